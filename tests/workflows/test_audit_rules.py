"""Each audit rule: sources that must and must not produce a finding."""

from __future__ import annotations

import textwrap

import pytest

# --- print_statement -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ('print("hi")', 1),
        ('x = 1\nif x:\n    print(x, sep="")', 3),
        ("def f():\n    return print", None),  # a reference, not a call
        ("s = 'print(1)'", None),  # inside a string
        ('# print("hi")', None),  # inside a comment
        ("obj.print()", None),  # a method, not the builtin
        ("self.printer.print('x')", None),
        ('"""\nprint(1)\n"""', None),  # inside a docstring
    ],
)
def test_print_statement(audit_one, found, source, line):
    expected = [] if line is None else [("print_statement", line)]
    assert found(audit_one(source), "print_statement") == expected


# --- debugger_call ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "breakpoint()",
        "import pdb; pdb.set_trace()",
        "import pdb\npdb.set_trace()",
        "import ipdb; ipdb.set_trace()",
        "import pudb; pudb.set_trace()",
        "pdb.set_trace()",  # no visible import still counts
        "from pdb import set_trace; set_trace()",
        "from ipdb import set_trace as st\nst()",
        "from pudb import *\nset_trace()",
        "import pdb as dbg\ndbg.set_trace()",
        "__import__('pdb').set_trace()",
        "def f():\n    import pdb\n    pdb.set_trace()",
    ],
)
def test_debugger_call_matches(audit_one, found, source):
    last_line = source.count("\n") + 1
    assert found(audit_one(source), "debugger_call") == [("debugger_call", last_line)]


@pytest.mark.parametrize(
    "source",
    [
        "import pdb",
        "tracer.set_trace()",
        "def set_trace():\n    pass\nset_trace()",
        "import sys\nsys.settrace(None)",
        "s = 'breakpoint()'",
        "# pdb.set_trace()",
        "obj.breakpoint()",
    ],
)
def test_debugger_call_does_not_match(audit_one, found, source):
    assert found(audit_one(source), "debugger_call") == []


# --- long_function ---------------------------------------------------------------------------


def _function(body_lines: int, header: str = "def f():") -> str:
    """A function whose body is exactly body_lines lines long."""
    return header + "\n" + "".join(f"    x{i} = {i}\n" for i in range(body_lines))


@pytest.mark.parametrize(("limit", "lines", "flagged"), [(50, 50, False), (50, 51, True), (5, 5, False), (5, 6, True)])
def test_long_function_boundary(audit_one, found, limit, lines, flagged):
    result = audit_one(_function(lines), max_function_lines=limit)
    assert found(result, "long_function") == ([("long_function", 1)] if flagged else [])


def test_long_function_reported_at_def_line_not_decorator(audit_one, found):
    source = "import functools\n\n@functools.cache\n" + _function(6, "async def g():")
    assert found(audit_one(source, max_function_lines=5), "long_function") == [("long_function", 4)]


def test_long_function_counts_docstring_and_multiline_statements(audit_one, found):
    source = 'def f():\n    """Doc.\n\n    More.\n    """\n    return (\n        1\n    )\n'
    # Body: the 4-line docstring plus the 3-line return = 7 lines.
    assert found(audit_one(source, max_function_lines=7), "long_function") == []
    assert found(audit_one(source, max_function_lines=6), "long_function") == [("long_function", 1)]


def test_long_function_nested_functions_reported_separately(audit_one, found):
    inner = textwrap.indent(_function(6, "def inner():"), "    ")
    source = "def outer():\n" + inner + "    return inner\n"
    assert found(audit_one(source, max_function_lines=5), "long_function") == [
        ("long_function", 1),
        ("long_function", 2),
    ]


def test_long_function_message_names_function_and_length(audit_one):
    (violation,) = audit_one(_function(6, "def compute():"), max_function_lines=5).violations
    assert violation.message == "function 'compute' body is 6 lines (limit 5)"


# --- hardcoded_secret ------------------------------------------------------------------------

GITHUB_TOKEN = "ghp_" + "a1B2" * 9  # 36 characters after the prefix


@pytest.mark.parametrize(
    "source",
    [
        'password = "hunter2"',
        'PASSWORD = "hunter2"',
        'db_password = "hunter2"',
        'passwd = "hunter2"',
        'secret = "s3cr3t"',
        'auth_token = "abc123"',
        'api_key = "abc123"',
        'apikey = "abc123"',
        'apiKey = "abc123"',
        'access_key = "abc123"',
        'AWS_SECRET_ACCESS_KEY = "abc123"',
        'private_key = "abc123"',
        'SECRET_KEY = "abc123"',
        'self.password = "hunter2"',
        'config["api_key"] = "abc123"',
        'settings = {"password": "hunter2"}',
        'connect(host="db", password="hunter2")',
        'token: str = "abc123"',
        'user, password = "bob", "hunter2"',
        'if (token := "abc123"):\n    pass',
        'key = "AKIAIOSFODNN7EXAMPLE"',
        'PEM = "-----BEGIN RSA PRIVATE KEY-----\\nMIIEow..."',
        'PEM = """-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn..."""',
        f'headers = {{"Authorization": "token {GITHUB_TOKEN}"}}',
        'log.info("key AKIAIOSFODNN7EXAMPLE used")',  # known formats match in any literal
    ],
)
def test_hardcoded_secret_matches(audit_one, found, source):
    assert found(audit_one(source), "hardcoded_secret") == [("hardcoded_secret", 1)]


@pytest.mark.parametrize(
    "source",
    [
        "password = get_password()",
        'password = ""',
        'password = "   "',
        'password = "changeme"',
        'password = "CHANGE_ME"',
        'password = "<your password here>"',
        'password = "${DB_PASSWORD}"',
        'password = "********"',
        'password = os.environ["PASSWORD"]',
        'password = f"{prefix}abc"',  # an f-string is not a literal
        'password = b"hunter2"',  # bytes are not scanned
        '# password = "hunter2"',
        'token_url = "https://example.com/token"',
        'password_hint = "your first pet"',
        'max_tokens = "100"',
        'tokenizer = "bpe"',
        'x = "my password is long"',  # a secret word in a value, not a name
        'key = "AKIAIOSFODNN7EXAMPLEX"',  # 17 characters after AKIA: not an access key id
        'connect(**{"password_file": "/run/secrets/db"})',
    ],
)
def test_hardcoded_secret_does_not_match(audit_one, found, source):
    assert found(audit_one(source), "hardcoded_secret") == []


def test_secret_value_is_never_echoed(audit_one):
    result = audit_one('password = "hunter2"\nk = "AKIAIOSFODNN7EXAMPLE"')
    assert len(result.violations) == 2
    assert all("hunter2" not in v.message and "AKIA" not in v.message for v in result.violations)


def test_one_literal_gives_one_secret_finding(audit_one, found):
    # Bound to a secret name AND in a known key format: reported once.
    assert found(audit_one('aws_access_key = "AKIAIOSFODNN7EXAMPLE"'), "hardcoded_secret") == [("hardcoded_secret", 1)]


def test_secret_line_is_the_literal_line(audit_one, found):
    source = 'settings = {\n    "user": "bob",\n    "password": "hunter2",\n}'
    assert found(audit_one(source), "hardcoded_secret") == [("hardcoded_secret", 3)]


# --- bare_except -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("try:\n    pass\nexcept:\n    pass", 3),
        ("try:\n    pass\nexcept Exception:\n    pass", None),
        ("try:\n    pass\nexcept (ValueError, KeyError) as exc:\n    pass", None),
        ("try:\n    pass\nexcept* ValueError:\n    pass", None),
        ("try:\n    pass\nexcept ValueError:\n    pass\nexcept:\n    raise", 5),
    ],
)
def test_bare_except(audit_one, found, source, line):
    expected = [] if line is None else [("bare_except", line)]
    assert found(audit_one(source), "bare_except") == expected


# --- eval_exec -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('eval("1 + 1")', [("eval_exec", 1)]),
        ('exec("x = 1")', [("eval_exec", 1)]),
        ("x = 1\ny = eval(input())\nexec(code, {})", [("eval_exec", 2), ("eval_exec", 3)]),
        ("model.eval()", []),
        ("cursor.exec('select 1')", []),
        ("import ast\nast.literal_eval('1')", []),
        ("s = 'eval(x)'", []),
    ],
)
def test_eval_exec(audit_one, found, source, expected):
    assert found(audit_one(source), "eval_exec") == expected


# --- syntax_error ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("x = 1\ndef f(:\n    pass\n", 2),
        ("def f():\nreturn 1\n", 2),  # IndentationError is a SyntaxError
        ("x = 1\ny = 2\nz = (\n", 3),
        ("print 'hello'", 1),  # Python 2
    ],
)
def test_syntax_error_reports_line(audit_one, found, source, line):
    result = audit_one(source)
    assert found(result) == [("syntax_error", line)]
    assert result.violations[0].message.startswith("does not parse: ")


def test_syntax_error_does_not_stop_other_files():
    from aura.workflows import run_audit

    result = run_audit({"files": [{"path": "bad.py", "content": "def ("}, {"path": "good.py", "content": "print(1)"}]})
    assert [(v.type, v.path) for v in result.violations] == [
        ("syntax_error", "bad.py"),
        ("print_statement", "good.py"),
    ]
    assert result.files_processed == 2


# --- edges found by mutation testing (docs/testing.md) ---------------------------------------


def test_debugger_via_dunder_import_names_the_module(audit_one):
    result = audit_one('__import__("ipdb").set_trace()')
    assert [(v.type, v.message) for v in result.violations] == [
        ("debugger_call", "debugger breakpoint: ipdb.set_trace()")
    ]


@pytest.mark.parametrize(
    "source",
    [
        'd = {1: "hunter2hunter2"}',  # a non-string key names nothing
        'd = {key: "hunter2hunter2"}',  # nor does a name used as a key
        'd = {**other, "x": 1}',  # ** entries have no key at all
        'mapping[1] = "hunter2hunter2"',
        'mapping[key] = "hunter2hunter2"',
        'user, *password = "ada", "hunter2hunter2"',  # starred targets are not followed
        '_ = "hunter2hunter2"',  # a name with no words is not secret-looking
        'd = {"": "hunter2hunter2"}',
        'f(**{"password": "x"})',
    ],
)
def test_hardcoded_secret_ignores_bindings_it_cannot_name(audit_one, found, source):
    result = audit_one(source)
    assert (result.files_processed, result.files_skipped, result.violations) == (1, 0, ())


@pytest.mark.parametrize(
    "value",
    ["<hunter2", "hunter2>", "${hunter2", "hunter2}", "${hunter2>", "<hunter2}"],
)
def test_only_complete_templates_are_placeholders(audit_one, found, value):
    assert found(audit_one(f'password = "{value}"'), "hardcoded_secret") == [("hardcoded_secret", 1)]


@pytest.mark.parametrize("value", ["<your password>", "${DB_PASSWORD}", "  ", "xxxxxxxx", " ChangeMe "])
def test_placeholders_are_not_secrets(audit_one, found, value):
    assert found(audit_one(f'password = "{value}"'), "hardcoded_secret") == []


def test_check_tree_orders_by_line_then_type_and_caps_each_rule():
    import ast

    from aura.workflows.audit.rules import check_tree, check_tree_counted
    from aura.workflows.audit.settings import AuditSettings

    source = "\n".join(['print(1); eval("1")'] * 4 + ['password = "hunter2hunter2"'])
    settings = AuditSettings(max_findings_per_rule=2)
    findings = check_tree(ast.parse(source), settings)
    assert [(f.type, f.line) for f in findings] == [
        ("eval_exec", 1),
        ("print_statement", 1),
        ("eval_exec", 2),
        ("print_statement", 2),
        ("eval_exec", 3),
        ("print_statement", 3),
        ("hardcoded_secret", 5),
    ]
    assert findings[4].message == "2 more eval_exec findings from this line on (not listed)"
    assert findings[5].message == "2 more print_statement findings from this line on (not listed)"
    capped, totals = check_tree_counted(ast.parse(source), settings)
    assert capped == findings
    assert totals == {"eval_exec": 4, "print_statement": 4, "hardcoded_secret": 1}


def test_rule_messages(audit_one):
    source = "breakpoint()\ntry:\n    pass\nexcept:\n    pass\n"
    assert [(v.type, v.message) for v in audit_one(source).violations] == [
        ("debugger_call", "debugger breakpoint: breakpoint()"),
        ("bare_except", "bare 'except:' catches everything, even KeyboardInterrupt"),
    ]


@pytest.mark.parametrize(
    ("source", "lines"),
    [
        ('password = api_key = "hunter2hunter2"', [1]),  # one literal, one finding
        ('f(user="ada", password="hunter2hunter2")', [1]),  # a harmless binding first
        ('user, password = "ada", "hunter2hunter2"', [1]),
        ('connect(timeout=30, password="hunter2hunter2")', [1]),  # a binding that is no string first
        ('d = {"retries": 3, "token": "hunter2hunter2"}', [1]),
        ('a = "AKIAABCDEFGHIJKLMNOP"\nb = "AKIAABCDEFGHIJKLMNOQ"', [1, 2]),  # every literal is looked at
    ],
)
def test_hardcoded_secret_sees_every_binding_and_literal_once(audit_one, found, source, lines):
    assert found(audit_one(source), "hardcoded_secret") == [("hardcoded_secret", line) for line in lines]
