"""The tests' one toolkit: AuthActions (auth.py), assert_error (errors.py), metric snapshots
(metrics.py), Prometheus and Alertmanager (prometheus.py, alertmanager.py), the slow app, and the
programs tests run in a process of their own (programs/). The Gunicorn and redis-server launcher,
which bench/ uses too, is aura.testing.servers."""
