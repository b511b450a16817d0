"""Authentication rules: password hashing, token issue and revocation. No Flask views here."""
