// SPDX-License-Identifier: Apache-2.0

`resetall
`timescale 1ns / 1ps
`default_nettype none

/*
 * Merges the device's four request sources (DMA reads, DMA writes, the ring
 * engine's immediate used-ring writes, MSI-X messages) into the one tx_req
 * TLP stream. Whole TLPs only: once a source
 * wins, its beats pass until its eop, then the next TLP is chosen round-robin
 * starting after the last winner. A TLP's first beat goes through in the
 * cycle it is chosen, so back-to-back TLPs leave a beat per cycle. Each
 * source keeps its own order; sources are not ordered against each other.
 */
module virtio_tx_arb #
(
    // TLP data width: 64, 128 or 256
    parameter DATA_WIDTH = 64,
    // TLP strobe width (one bit per dword)
    parameter STRB_WIDTH = DATA_WIDTH/32
)
(
    input  wire                   clk,
    input  wire                   rst,

    /*
     * DMA read requests (MRd)
     */
    input  wire [DATA_WIDTH-1:0]  tx_rd_tlp_data,
    input  wire [STRB_WIDTH-1:0]  tx_rd_tlp_strb,
    input  wire [127:0]           tx_rd_tlp_hdr,
    input  wire                   tx_rd_tlp_valid,
    input  wire                   tx_rd_tlp_sop,
    input  wire                   tx_rd_tlp_eop,
    output wire                   tx_rd_tlp_ready,

    /*
     * DMA write requests (MWr)
     */
    input  wire [DATA_WIDTH-1:0]  tx_wr_tlp_data,
    input  wire [STRB_WIDTH-1:0]  tx_wr_tlp_strb,
    input  wire [127:0]           tx_wr_tlp_hdr,
    input  wire                   tx_wr_tlp_valid,
    input  wire                   tx_wr_tlp_sop,
    input  wire                   tx_wr_tlp_eop,
    output wire                   tx_wr_tlp_ready,

    /*
     * Immediate writes: used ring elements, index, avail_event (MWr)
     */
    input  wire [DATA_WIDTH-1:0]  tx_imm_tlp_data,
    input  wire [STRB_WIDTH-1:0]  tx_imm_tlp_strb,
    input  wire [127:0]           tx_imm_tlp_hdr,
    input  wire                   tx_imm_tlp_valid,
    input  wire                   tx_imm_tlp_sop,
    input  wire                   tx_imm_tlp_eop,
    output wire                   tx_imm_tlp_ready,

    /*
     * MSI-X messages (MWr)
     */
    input  wire [DATA_WIDTH-1:0]  tx_msg_tlp_data,
    input  wire [STRB_WIDTH-1:0]  tx_msg_tlp_strb,
    input  wire [127:0]           tx_msg_tlp_hdr,
    input  wire                   tx_msg_tlp_valid,
    input  wire                   tx_msg_tlp_sop,
    input  wire                   tx_msg_tlp_eop,
    output wire                   tx_msg_tlp_ready,

    /*
     * Merged request stream to the host
     */
    output wire [DATA_WIDTH-1:0]  tx_req_tlp_data,
    output wire [STRB_WIDTH-1:0]  tx_req_tlp_strb,
    output wire [127:0]           tx_req_tlp_hdr,
    output wire                   tx_req_tlp_valid,
    output wire                   tx_req_tlp_sop,
    output wire                   tx_req_tlp_eop,
    input  wire                   tx_req_tlp_ready
);

initial begin
    if (DATA_WIDTH != 64 && DATA_WIDTH != 128 && DATA_WIDTH != 256) begin
        $error("Error: DATA_WIDTH must be 64, 128 or 256 (instance %m)");
        $finish;
    end
    if (STRB_WIDTH * 32 != DATA_WIDTH) begin
        $error("Error: STRB_WIDTH must be DATA_WIDTH/32 (instance %m)");
        $finish;
    end
end

// sources, in round-robin order
localparam [1:0]
    SRC_RD  = 2'd0,
    SRC_WR  = 2'd1,
    SRC_MSG = 2'd2,
    SRC_IMM = 2'd3;

reg [1:0] grant_reg;    // source of the TLP in progress
reg       locked_reg;   // a TLP is in progress: only grant_reg may send
reg [1:0] last_reg;     // winner of the last arbitration

wire [3:0] req_valid = {tx_imm_tlp_valid, tx_msg_tlp_valid, tx_wr_tlp_valid, tx_rd_tlp_valid};

// round-robin choice: the first valid source after the last winner (the last winner itself
// when no other is valid)
reg [1:0] choice;
reg [1:0] cand;
integer k;
always @* begin
    choice = last_reg;
    for (k = 3; k >= 0; k = k - 1) begin
        cand = last_reg + 2'd1 + k[1:0];
        if (req_valid[cand])
            choice = cand;
    end
end

wire [1:0] sel = locked_reg ? grant_reg : choice;

reg [DATA_WIDTH-1:0] sel_data;
reg [STRB_WIDTH-1:0] sel_strb;
reg [127:0]          sel_hdr;
reg                  sel_valid;
reg                  sel_sop;
reg                  sel_eop;

always @* begin
    case (sel)
        SRC_RD: begin
            sel_data = tx_rd_tlp_data;
            sel_strb = tx_rd_tlp_strb;
            sel_hdr = tx_rd_tlp_hdr;
            sel_valid = tx_rd_tlp_valid;
            sel_sop = tx_rd_tlp_sop;
            sel_eop = tx_rd_tlp_eop;
        end
        SRC_WR: begin
            sel_data = tx_wr_tlp_data;
            sel_strb = tx_wr_tlp_strb;
            sel_hdr = tx_wr_tlp_hdr;
            sel_valid = tx_wr_tlp_valid;
            sel_sop = tx_wr_tlp_sop;
            sel_eop = tx_wr_tlp_eop;
        end
        SRC_IMM: begin
            sel_data = tx_imm_tlp_data;
            sel_strb = tx_imm_tlp_strb;
            sel_hdr = tx_imm_tlp_hdr;
            sel_valid = tx_imm_tlp_valid;
            sel_sop = tx_imm_tlp_sop;
            sel_eop = tx_imm_tlp_eop;
        end
        default: begin
            sel_data = tx_msg_tlp_data;
            sel_strb = tx_msg_tlp_strb;
            sel_hdr = tx_msg_tlp_hdr;
            sel_valid = tx_msg_tlp_valid;
            sel_sop = tx_msg_tlp_sop;
            sel_eop = tx_msg_tlp_eop;
        end
    endcase
end

// output register
reg [DATA_WIDTH-1:0] out_data_reg;
reg [STRB_WIDTH-1:0] out_strb_reg;
reg [127:0]          out_hdr_reg;
reg                  out_valid_reg;
reg                  out_sop_reg;
reg                  out_eop_reg;

assign tx_req_tlp_data = out_data_reg;
assign tx_req_tlp_strb = out_strb_reg;
assign tx_req_tlp_hdr = out_hdr_reg;
assign tx_req_tlp_valid = out_valid_reg;
assign tx_req_tlp_sop = out_sop_reg;
assign tx_req_tlp_eop = out_eop_reg;

wire out_free = !out_valid_reg || tx_req_tlp_ready;
wire take = sel_valid && out_free;

assign tx_rd_tlp_ready = out_free && sel == SRC_RD;
assign tx_wr_tlp_ready = out_free && sel == SRC_WR;
assign tx_msg_tlp_ready = out_free && sel == SRC_MSG;
assign tx_imm_tlp_ready = out_free && sel == SRC_IMM;

always @(posedge clk) begin
    if (out_valid_reg && tx_req_tlp_ready)
        out_valid_reg <= 1'b0;

    if (take) begin
        out_valid_reg <= 1'b1;
        out_data_reg <= sel_data;
        out_strb_reg <= sel_strb;
        out_hdr_reg <= sel_hdr;
        out_sop_reg <= sel_sop;
        out_eop_reg <= sel_eop;
        if (!locked_reg)
            last_reg <= sel;
        grant_reg <= sel;
        locked_reg <= !sel_eop;
    end

    if (rst) begin
        out_valid_reg <= 1'b0;
        locked_reg <= 1'b0;
        grant_reg <= SRC_RD;
        last_reg <= SRC_IMM;
    end
end

endmodule

`resetall
