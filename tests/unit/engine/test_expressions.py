"""The expression whitelist (URS-PLT-04): plain data, comparisons and whitelisted functions run;
every known way out of the sandbox is refused before anything is evaluated."""
from __future__ import annotations

import datetime as dt
import keyword

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.exceptions import ProcessRejected, UnsafeExpression
from engine.expressions import Clock, RestrictedEnvironment, check, evaluate

pytestmark = pytest.mark.urs("URS-PLT-04")

CATCH_WARNINGS_ESCAPE = (
    "[c for c in ().__class__.__bases__[0].__subclasses__() if c.__name__ == 'catch_warnings'][0]()"
    "._module.__builtins__['__import__']('os').system('id')"
)


@pytest.mark.parametrize(("source", "data", "expected"), [
    ("classification == 'critical'", {"classification": "critical"}, True),
    ("decision in ('approve', 'reject')", {"decision": "reject"}, True),
    ("count > 3 and not closed", {"count": 4, "closed": False}, True),
    ("qty * 2 + 1", {"qty": 20}, 41),
    ("{'minor': 30, 'major': 20}[cls]", {"cls": "major"}, 20),
    ("len(rows) if rows else 0", {"rows": [1, 2, 3]}, 3),
    ("max(values) - min(values)", {"values": [4, 9, 1]}, 8),
    ("sum(r.get('qty', 0) for r in rows)", {"rows": [{"qty": 2}, {"qty": 5}, {}]}, 7),
    ("[x.upper() for x in names if x.startswith('a')]", {"names": ["ann", "bob", "al"]}, ["ANN", "AL"]),
    ("add_days('2026-01-30', 3)", {}, "2026-02-02"),
    ("round(days_between('2026-01-01T00:00:00+00:00', '2026-01-02T12:00:00+00:00'), 1)", {}, 1.5),
    ("f'{batch}-{n}'", {"batch": "COI-7", "n": 2}, "COI-7-2"),
    ("sorted(set(tags))", {"tags": ["b", "a", "b"]}, ["a", "b"]),
    ("x is None or x != 1", {"x": None}, True),
])
def test_plain_data_comparisons_and_whitelisted_functions_are_accepted_and_evaluate(source, data, expected):
    check(source)
    assert evaluate(source, data) == expected


def test_a_script_with_assignments_loops_and_conditions_is_accepted():
    check("total = 0\nfor r in rows:\n    if r.get('ok'):\n        total += 1\nsummary = {'ok': total}", "exec")


def test_now_and_today_read_the_runtime_clock():
    clock = Clock()
    clock.offset = -dt.timedelta(days=400)
    expected = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=400)).date().isoformat()
    assert evaluate("today()", {}, clock) == expected


@pytest.mark.parametrize(("source", "mode", "words"), [
    ("__import__('os')", "eval", "__import__"),
    ("__import__('os').system('id')", "eval", "__import__"),
    ("import os", "exec", "Import"),
    ("from os import system", "exec", "ImportFrom"),
    ("().__class__.__bases__[0].__subclasses__()", "eval", "__class__"),
    (CATCH_WARNINGS_ESCAPE, "eval", "__class__"),
    ("open('/etc/passwd')", "eval", "open"),
    ("open('/etc/passwd').read()", "eval", "open"),
    ("eval('1+1')", "eval", "eval"),
    ("exec('x = 1')", "exec", "exec"),
    ("getattr(x, '__class__')", "eval", "getattr"),
    ("lambda: 1", "eval", "Lambda"),
    ("(lambda f: f)(1)", "eval", "only named functions"),
    ('"{0.__class__}".format(x)', "eval", "format"),
    ("9**9**9", "eval", "Pow"),
    ("__builtins__", "eval", "__builtins__"),
    ("x.__dict__", "eval", "__dict__"),
    ("__name__", "eval", "__name__"),
    ("globals()", "eval", "globals"),
    ("vars()", "eval", "vars"),
    ("compile('1', 'x', 'eval')", "eval", "compile"),
    ("def f():\n    return 1", "exec", "FunctionDef"),
    ("class A:\n    pass", "exec", "ClassDef"),
    ("while True:\n    pass", "exec", "While"),
    ("len = 3", "exec", "len"),
    ("b'bytes'", "eval", "byte strings"),
    ("x.format_map({})", "eval", "format_map"),
    ("with open('/etc/passwd') as f:\n    pass", "exec", "With"),
    ("try:\n    pass\nexcept Exception:\n    pass", "exec", "Try"),
    ("global x", "exec", "Global"),
    ("(yield)", "eval", "Yield"),
    ("[*x]", "eval", "Starred"),
    ("(x := 1)", "eval", "NamedExpr"),
])
def test_escapes_and_dangerous_constructs_are_refused_with_a_reason(source, mode, words):
    with pytest.raises(UnsafeExpression) as caught:
        check(source, mode)
    assert words in caught.value.message
    assert isinstance(caught.value, ProcessRejected)


def test_a_syntax_error_is_refused_with_a_sentence_not_a_traceback():
    with pytest.raises(UnsafeExpression, match="syntax error"):
        check("a ==")


def test_an_overlong_expression_is_refused():
    with pytest.raises(UnsafeExpression, match="longer than"):
        check("1 + " * 6000 + "1")


def test_range_is_limited_so_a_script_cannot_exhaust_memory():
    assert evaluate("len(range(10))", {}) == 10
    with pytest.raises(UnsafeExpression, match="100,000"):
        evaluate("range(100001)", {})


def test_the_engine_environment_checks_before_it_evaluates_or_executes():
    env = RestrictedEnvironment()
    with pytest.raises(UnsafeExpression):
        env.evaluate("__import__('os').getcwd()", {})
    with pytest.raises(UnsafeExpression):
        env.execute("import os", {}, {})
    with pytest.raises(UnsafeExpression):
        env.evaluate(CATCH_WARNINGS_ESCAPE, {})
    assert env.evaluate("a + 1", {"a": 1}) == 2


def test_task_data_may_not_shadow_a_whitelisted_function():
    env = RestrictedEnvironment()
    with pytest.raises(UnsafeExpression, match="len"):
        env.execute("x = 1", {"len": "not a function"}, {})


def test_evaluation_has_no_builtins_even_for_names_that_pass_the_whitelist():
    # `print` passes the name check (no leading underscore) but is not a whitelisted function.
    with pytest.raises(UnsafeExpression, match="print"):
        evaluate("print('x')", {})
    with pytest.raises(NameError):
        evaluate("type", {})


_underscored = st.from_regex(r"_[A-Za-z0-9_]{0,24}", fullmatch=True)
_plain_ident = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True).filter(lambda s: not keyword.iskeyword(s))


@settings(max_examples=200, deadline=None)
@given(name=_underscored)
def test_any_name_starting_with_an_underscore_is_refused(name):
    with pytest.raises(UnsafeExpression):
        check(name)
    with pytest.raises(UnsafeExpression):
        check(f"{name}()")
    with pytest.raises(UnsafeExpression):
        check(f"{name} = 1", "exec")


@settings(max_examples=200, deadline=None)
@given(head=_plain_ident, before=st.lists(_plain_ident, max_size=3), attr=_underscored,
       after=st.lists(st.one_of(_plain_ident, _underscored), max_size=3), call=st.booleans())
def test_any_attribute_chain_reaching_an_underscored_attribute_is_refused(head, before, attr, after, call):
    chain = ".".join([head, *before, attr, *after]) + ("()" if call else "")
    with pytest.raises(UnsafeExpression):
        check(chain)
    with pytest.raises(UnsafeExpression):
        check(f"[v for v in {chain}]")


@pytest.mark.urs("URS-PLT-04")
def test_a_huge_repetition_is_refused_before_it_can_exhaust_memory():
    with pytest.raises(UnsafeExpression):
        check("'x' * 99999999999")


@pytest.mark.urs("URS-PLT-04")
def test_a_huge_repetition_built_from_data_is_refused_at_run_time():
    assert evaluate("s * n", {"s": "ab", "n": 3}) == "ababab"
    with pytest.raises(UnsafeExpression, match="limit"):
        evaluate("s * n", {"s": "x", "n": 10**10})
    with pytest.raises(UnsafeExpression):
        evaluate("[0] * n", {"n": 10**9})
