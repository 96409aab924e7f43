"""The `verilog` verifier with Icarus Verilog: port parsing, equivalent / wrong / broken / hanging candidates.

Expected outcomes are by construction: an equivalent rewrite matches on every step, a design with one wrong
operator differs on some random vector (with 200 random 8-bit vectors the chance it never shows is nil).
"""

from __future__ import annotations

import shutil

import pytest

import rlvr.rewards.verilog as vmod
from rlvr.rewards.verilog import Port, bits_match, make_testbench, parse_ports

pytestmark = pytest.mark.timeout(90)
needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("vvp") is None,
                                    reason="Icarus Verilog not installed (apt-get install iverilog)")

ADDER = """
module top_module(input [7:0] a, input [7:0] b, output [8:0] sum);
  assign sum = a + b;
endmodule
"""
ADDER_REWRITE = """
// same function, different style, non-ANSI header
module top_module(a, b, sum);
  input [7:0] a; input [7:0] b;
  output reg [8:0] sum;
  always @(*) begin sum = {1'b0, a} + {1'b0, b}; end
endmodule
"""
ADDER_WRONG = """module top_module(input [7:0] a, input [7:0] b, output [8:0] sum);
  assign sum = a - b;
endmodule"""

COUNTER = """
module top_module #(parameter W = 4) (input clk, input reset, input en, output reg [W-1:0] q);
  always @(posedge clk) begin
    if (reset) q <= 0;
    else if (en) q <= q + 1;
  end
endmodule
"""
COUNTER_OK = """module top_module(input clk, input reset, input en, output reg [3:0] q);
  always @(posedge clk) q <= reset ? 4'd0 : q + {3'd0, en};
endmodule"""
COUNTER_NO_RESET = """module top_module(input clk, input reset, input en, output reg [3:0] q);
  always @(posedge clk) if (en) q <= q + 1;
endmodule"""


def ask(src: str) -> str:
    return f"Here is the design:\n```verilog\n{src}\n```"


def test_parse_ansi_non_ansi_and_parameters():
    assert parse_ports(ADDER, "top_module") == [Port("a", "input", 8), Port("b", "input", 8), Port("sum", "output", 9)]
    assert sorted(parse_ports(ADDER_REWRITE, "top_module"), key=lambda p: p.name) == \
        [Port("a", "input", 8), Port("b", "input", 8), Port("sum", "output", 9)]
    # W = 4 -> [W-1:0] is 4 bits
    assert parse_ports(COUNTER, "top_module")[-1] == Port("q", "output", 4)
    src = "module m #(parameter N = 8, localparam L = $clog2(N)) (input [L-1:0] s, output y);endmodule"
    assert parse_ports(src, "m")[0] == Port("s", "input", 3)  # clog2(8) = 3


def test_bits_match_treats_golden_x_as_dont_care():
    assert bits_match("1x0", "110") and bits_match("1x0", "100")
    assert not bits_match("100", "1x0")  # candidate x where golden is 0
    assert not bits_match("10", "100")


def test_testbench_is_seeded():
    ports = parse_ports(ADDER, "top_module")
    assert make_testbench("top_module", ports, 5, 0) == make_testbench("top_module", ports, 5, 0)
    assert make_testbench("top_module", ports, 5, 0) != make_testbench("top_module", ports, 5, 1)


@needs_iverilog
def test_equivalent_combinational_design_scores_one():
    r = vmod.verilog(ask(ADDER_REWRITE), ADDER, {}, vectors=50)
    assert r.score == 1.0, r.reason
    assert r.details["steps"] == 50


@needs_iverilog
def test_wrong_design_scores_zero_with_first_mismatch():
    r = vmod.verilog(ask(ADDER_WRONG), ADDER, {}, vectors=50)
    assert r.score == 0.0 and "mismatch on" in r.reason and "sum: expected" in r.reason
    r = vmod.verilog(ask(ADDER_WRONG), None, {"golden": ADDER}, vectors=50, partial=True)
    assert 0.0 <= r.score < 1.0  # a - b equals a + b only when b == 0 (mod 2^9)


@needs_iverilog
def test_clocked_design_with_reset():
    assert vmod.verilog(ask(COUNTER_OK), COUNTER, {}, vectors=40).score == 1.0
    # without reset q starts as x and stays x: golden shows 0 after reset -> mismatch
    r = vmod.verilog(ask(COUNTER_NO_RESET), COUNTER, {}, vectors=40)
    assert r.score == 0.0 and "mismatch" in r.reason


@needs_iverilog
def test_compile_error_port_mismatch_and_hang():
    r = vmod.verilog(ask("module top_module(input [7:0] a, input [7:0] b, output [8:0] sum);\n assign sum = a +;\nendmodule"),
                     ADDER, {}, vectors=10)
    assert r.score == 0.0 and r.reason.startswith("compile error")
    r = vmod.verilog(ask("module top_module(input [7:0] a, output [8:0] sum); assign sum = a; endmodule"), ADDER, {})
    assert r.score == 0.0 and r.reason.startswith("port mismatch")
    hang = """module top_module(input [7:0] a, input [7:0] b, output reg [8:0] sum);
  reg t; initial begin t = 0; while (1) t = ~t; end  // zero-delay loop: simulation time never advances
  always @(*) sum = a + b;
endmodule"""
    r = vmod.verilog(ask(hang), ADDER, {}, vectors=10, timeout_s=2)
    assert r.score == 0.0 and "timeout" in r.reason


def test_no_code_block():
    if shutil.which("iverilog") is None:
        with pytest.raises(RuntimeError, match="apt-get install iverilog"):
            vmod.check_available()
        return
    assert vmod.verilog("no code", ADDER, {}).reason.startswith("no ```verilog")



def test_trace_ignores_untagged_lines_and_flags_conflicts():
    # a design's own $display output cannot overwrite the testbench's lines: a step printed twice with
    # different values becomes None (counted as a mismatch); untagged lines are ignored
    out = "@rlvr 0 01\n0 11\n@rlvr 0 10\n@rlvr 1 11\n@rlvr 1 11\nhello\n"
    assert vmod._trace(out) == {0: None, 1: ["11"]}
