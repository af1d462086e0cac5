"""Restricted expressions for gateway conditions, script tasks, timers and task properties (URS-PLT-04).

SpiffWorkflow evaluates every expression with Python's own ``eval``/``exec``; emptying
``__builtins__`` is escapable through object internals (``().__class__.__bases__[0]
.__subclasses__()``...). So every expression's syntax tree is checked against a
whitelist of node types, names and methods *before* it runs, both when a diagram is
loaded and again at run time. Anything outside the whitelist is refused with a sentence
that names the offending construct.
"""
from __future__ import annotations

import ast
import copy
import datetime as dt
import functools

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment

from .exceptions import CellqmsError, ProcessRejected, UnsafeExpression

# Node types an expression or script may contain. Notably absent: Import, Attribute access
# except whitelisted methods, Lambda, FunctionDef, ClassDef, While (unbounded), Pow (9**9**9),
# Global/Nonlocal, Starred tricks on calls, f-strings' format specs are fine (JoinedStr).
_ALLOWED_NODES = (
    ast.Expression, ast.Module, ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.If, ast.For,
    ast.Pass, ast.Break, ast.Continue,
    ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod,
    ast.Not, ast.USub, ast.UAdd,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot,
    ast.Constant, ast.Name, ast.Load, ast.Store, ast.Del, ast.List, ast.Tuple, ast.Dict, ast.Set,
    ast.Subscript, ast.Slice, ast.Call, ast.keyword, ast.Attribute,
    ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.comprehension,
    ast.JoinedStr, ast.FormattedValue,
)

_SAFE_METHODS = frozenset({
    "get", "keys", "values", "items", "lower", "upper", "strip", "startswith", "endswith",
    "append", "split", "join", "count", "index",
})


def _iso(value) -> str:
    return value.isoformat()


def parse_datetime(value) -> dt.datetime:
    """An ISO 8601 string (or date) as an aware UTC datetime."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    else:
        text = str(value).replace("Z", "+00:00")
        parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def parse_date(value) -> dt.date:
    return dt.date.fromisoformat(str(value)[:10])


class Clock:
    """The runtime's notion of now. Scenario tests may shift it to act "in the past";
    SpiffWorkflow's own timer checks always use the real clock."""

    def __init__(self):
        self.offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + self.offset


SYSTEM_CLOCK = Clock()


def add_days(value, days) -> str:
    if isinstance(value, str) and len(value) == 10:
        return (parse_date(value) + dt.timedelta(days=days)).isoformat()
    return (parse_datetime(value) + dt.timedelta(days=days)).isoformat(timespec="seconds")


def add_hours(value, hours) -> str:
    return (parse_datetime(value) + dt.timedelta(hours=hours)).isoformat(timespec="seconds")


def days_between(start, end) -> float:
    return (parse_datetime(end) - parse_datetime(start)).total_seconds() / 86400


SAFE_FUNCTIONS = {
    "len": len, "min": min, "max": max, "sum": sum, "abs": abs, "round": round,
    "int": int, "float": float, "str": str, "bool": bool, "sorted": sorted, "any": any, "all": all,
    "list": list, "dict": dict, "set": set, "tuple": tuple, "enumerate": enumerate, "zip": zip,
    "range": lambda *a: range(*a) if len(range(*a)) <= 100_000 else _too_big(),
    "add_days": add_days, "add_hours": add_hours,
    "days_between": days_between, "parse_datetime": lambda v: _iso(parse_datetime(v)),
    "parse_date": lambda v: parse_date(v).isoformat(),
    "True": True, "False": False, "None": None,
}


def _too_big():
    raise UnsafeExpression("range() is limited to 100,000 items")


def _problem(node: ast.AST) -> str | None:
    if not isinstance(node, _ALLOWED_NODES):
        return f"'{type(node).__name__}' is not allowed in a diagram expression"
    if isinstance(node, ast.Name) and node.id.startswith("_"):
        return f"the name '{node.id}' is not allowed (names may not start with '_')"
    if isinstance(node, ast.Attribute):
        if node.attr.startswith("_") or node.attr not in _SAFE_METHODS:
            return f"access to '.{node.attr}' is not allowed (only {', '.join(sorted(_SAFE_METHODS))})"
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            if func.id not in SAFE_FUNCTIONS and func.id not in ("now", "today"):
                return f"the function '{func.id}' is not allowed"
        elif not isinstance(func, ast.Attribute):
            return "only named functions and whitelisted methods may be called"
    if isinstance(node, ast.Constant) and isinstance(node.value, (bytes,)):
        return "byte strings are not allowed"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        for side in (node.left, node.right):
            if isinstance(side, ast.Constant) and isinstance(side.value, int) and abs(side.value) > MAX_REPEAT:
                return f"multiplying by {side.value:,} is not allowed (at most {MAX_REPEAT:,})"
    if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Mult):
        return "'*=' is not allowed; write 'x = x * n'"
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.comprehension)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Name) and sub.id in SAFE_FUNCTIONS:
                    return f"'{sub.id}' is a built-in function and cannot be assigned"
    return None


MAX_REPEAT = 1_000_000
MAX_SEQUENCE = 1_000_000


def guarded_mul(left, right):
    """`*` with a size limit: a repeated string or list may not exceed a million items."""
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and len(seq) * count > MAX_SEQUENCE:
            raise UnsafeExpression(f"the result of '*' would have {len(seq) * count:,} items (limit {MAX_SEQUENCE:,})")
    if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > 4096:
        raise UnsafeExpression("the result of '*' would be an unreasonably large number")
    return left * right


class _GuardMultiplication(ast.NodeTransformer):
    """Replace every `a * b` by `_cellqms_mul(a, b)`; users cannot name it (names may not start with '_')."""

    def visit_BinOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Mult):
            call = ast.Call(func=ast.Name("_cellqms_mul", ast.Load()), args=[node.left, node.right], keywords=[])
            return ast.copy_location(call, node)
        return node


@functools.lru_cache(maxsize=4096)
def compiled(source: str, mode: str = "eval"):
    """Check, guard and compile an expression or script once; the code object is cached."""
    tree = _GuardMultiplication().visit(copy.deepcopy(check(source, mode)))
    ast.fix_missing_locations(tree)
    return compile(tree, "<diagram expression>", mode)


@functools.lru_cache(maxsize=4096)
def check(source: str, mode: str = "eval") -> ast.AST:
    """Parse and whitelist-check an expression ('eval') or script ('exec'); raise UnsafeExpression."""
    if source is None:
        raise UnsafeExpression("empty expression")
    if len(source) > 20_000:
        raise UnsafeExpression("expression is longer than 20,000 characters")
    try:
        tree = ast.parse(source, mode=mode)
    except SyntaxError as exc:
        raise UnsafeExpression(f"syntax error in expression {source!r}: {exc.msg} (line {exc.lineno})") from exc
    for node in ast.walk(tree):
        problem = _problem(node)
        if problem:
            raise UnsafeExpression(f"{problem}: {source.strip()[:200]!r}", details={"expression": source[:500]})
    return tree


def evaluate(source: str, data: dict, clock: Clock = SYSTEM_CLOCK):
    """Evaluate a checked expression against plain task data (used for task properties)."""
    scope = {"__builtins__": {}, **functions(clock)}
    scope.update({k: v for k, v in data.items() if not k.startswith("_")})
    return eval(compiled(source, "eval"), scope)  # noqa: S307 - whitelisted and guarded above


def functions(clock: Clock) -> dict:
    """The whitelisted functions, with now() and today() read from `clock` (ISO strings: data stays JSON)."""
    return {
        **SAFE_FUNCTIONS,
        "_cellqms_mul": guarded_mul,
        "now": lambda: clock.now().isoformat(timespec="seconds"),
        "today": lambda: clock.now().date().isoformat(),
    }


class RestrictedEnvironment(TaskDataEnvironment):
    """SpiffWorkflow's task-data environment with the whitelist check in front of eval and exec."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK):
        super().__init__({"__builtins__": {}, **functions(clock)})

    # Same steps as TaskDataEnvironment, but running our checked and guarded code object
    # instead of handing the raw string to eval/exec.
    def evaluate(self, expression, context, external_context=None):
        code = compiled(expression, "eval")
        scope = copy.copy(self.globals)
        scope.update(external_context or {})
        scope.update(context)
        return eval(code, scope)  # noqa: S307 - whitelisted and guarded

    def execute(self, script, context, external_context=None):
        code = compiled(script, "exec")
        self.check_for_overwrite(context, external_context or {})
        scope = copy.copy(self.globals)
        scope.update(external_context or {})
        context.update(scope)
        try:
            exec(code, context)  # noqa: S102 - whitelisted and guarded
        finally:
            self._remove_globals_and_functions_from_context(context, external_context)
        return True

    def call_service(self, context, operation_name=None, operation_params=None, **kwargs):
        """Service tasks may call only the platform's registered operations (engine.services)."""
        from . import services

        params = {name: spec.get("value") for name, spec in (operation_params or {}).items()}
        return services.call(operation_name, params)

    def check_for_overwrite(self, context, external_context):
        # Data keys may shadow True/False/None safely; only callables matter.
        clashes = {k for k, v in self.globals.items() if callable(v)} & set(context)
        clashes |= set(external_context) & set(context)
        if clashes:
            raise UnsafeExpression(
                f"task data overwrites a built-in function: {', '.join(sorted(clashes))}; rename the field")


class PlatformScriptEngine(PythonScriptEngine):
    """SpiffWorkflow's engine with service calls that keep their reason.

    SpiffWorkflow 3.2's own `call_service` error path refers to an undefined name, so any
    failing operation surfaced as a NameError; here the operation's own error reaches the user.
    """

    def call_service(self, task, **kwargs):
        try:
            return self.environment.call_service(task.data, **kwargs)
        except CellqmsError:
            raise  # operations choose their refusal on purpose (not_in_role, too_large, ...)
        except Exception as exc:  # an operation's own failure, named for the person who sees it
            name = kwargs.get("operation_name")
            raise ProcessRejected(f"The service operation '{name}' failed: {exc}") from exc


def make_script_engine(clock: Clock = SYSTEM_CLOCK) -> PythonScriptEngine:
    """The only script engine the platform ever hands to SpiffWorkflow."""
    return PlatformScriptEngine(environment=RestrictedEnvironment(clock))
