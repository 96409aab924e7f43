"""The ``calculator`` tool: safe arithmetic on numbers, never ``eval`` of model text.

    CalculatorTool()({"expression": "47+8-5*(2+1)"}, {})   # -> "40"
    CalculatorTool()({"expression": "7/2"}, {})            # -> "3.5"

The expression is parsed with ``ast.parse(mode="eval")`` and walked by `evaluate`, which allows only number
literals, + - * / // % ** (unary and binary) and parentheses; a name, a call, an attribute or any other node is a
`ToolError`. Limits keep a hostile expression cheap: at most ``max_length`` characters, exponents up to
``MAX_EXPONENT`` in absolute value, integers up to ``MAX_DIGITS`` digits. (A walker of a dozen node types is
shorter than configuring a general expression library down to it.)
"""

from __future__ import annotations

import ast
import math
import operator

from rlvr.rollout.tools import TOOLS, ToolError

MAX_EXPONENT = 1000
MAX_DIGITS = 1000
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic ``expression``; ToolError for anything else or past the limits."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError) as err:
        raise ToolError(f"cannot parse {expression!r}: {getattr(err, 'msg', err)}") from None
    return _walk(tree.body)


def _walk(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_walk(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _walk(node.left), _walk(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"exponent {right} is too large (|exponent| <= {MAX_EXPONENT})")
        try:
            value = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError("the result is too large") from None
        if isinstance(value, complex):
            raise ToolError("the result is not a real number")
        if isinstance(value, int) and value.bit_length() > MAX_DIGITS * 3.33:
            raise ToolError(f"the result has more than {MAX_DIGITS} digits")
        return value
    raise ToolError(f"only numbers, + - * / // % ** and parentheses are allowed (found {type(node).__name__})")


def format_number(value: int | float) -> str:
    """An int as it is; a float with up to 12 significant digits ("3.5", "0.333333333333"), integral floats
    without ".0" ("4")."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ToolError("the result is not finite")
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".12g")


@TOOLS.register("calculator", doc="safe arithmetic: numbers, + - * / // % ** and parentheses")
class CalculatorTool:
    name = "calculator"
    description = "Evaluate an arithmetic expression (numbers, + - * / // % ** and parentheses)."
    parameters = {"type": "object", "properties": {"expression": {"type": "string",
                                                                   "description": "e.g. 47+8-5"}},
                  "required": ["expression"]}

    def __init__(self, max_length: int = 200):
        self.max_length = max_length

    def __call__(self, arguments: dict, state: dict) -> str:
        expression = arguments.get("expression")
        if not isinstance(expression, str):
            raise ToolError('calculator takes {"expression": "<arithmetic>"}')
        if len(expression) > self.max_length:
            raise ToolError(f"the expression is longer than {self.max_length} characters")
        return format_number(evaluate(expression))
