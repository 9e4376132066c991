// SPDX-License-Identifier: Apache-2.0

`resetall
`timescale 1ns / 1ps
`default_nettype none

/*
 * Immediate memory writes: 1..8 bytes at any address, data given with the
 * request (the ring engine's used-ring elements, used index and avail_event).
 *
 * One request at a time becomes one memory write TLP, or two when its bytes
 * cross a 4 KiB boundary (a used element in the last dword of a page): 3-DW
 * header below 4 GiB, 4-DW above; byte enables for the ends; 1 to 3 dwords
 * of payload, so two beats at DATA_WIDTH 64 when the bytes span three
 * dwords. With bus mastering off a request is taken and dropped. done pulses once per
 * request, in order, when its last beat has been taken by the TLP stream
 * (or when it was dropped); idle is high when nothing is held.
 */
module virtio_imm_wr #
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
     * Requests
     */
    input  wire [63:0]            s_req_addr,
    input  wire [3:0]             s_req_len,      // 1..8 bytes
    input  wire [63:0]            s_req_data,     // first byte in bits 7:0
    input  wire                   s_req_valid,
    output wire                   s_req_ready,
    output reg                    done,
    output wire                   idle,

    /*
     * Memory write TLPs
     */
    output wire [DATA_WIDTH-1:0]  tx_imm_tlp_data,
    output wire [STRB_WIDTH-1:0]  tx_imm_tlp_strb,
    output wire [127:0]           tx_imm_tlp_hdr,
    output wire                   tx_imm_tlp_valid,
    output wire                   tx_imm_tlp_sop,
    output wire                   tx_imm_tlp_eop,
    input  wire                   tx_imm_tlp_ready,

    /*
     * Configuration
     */
    input  wire [15:0]            requester_id,
    input  wire                   bus_master_enable
);

localparam [2:0] FMT_3DW_DATA = 3'b010;
localparam [2:0] FMT_4DW_DATA = 3'b011;
localparam [4:0] TYPE_MEM = 5'b00000;

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

// the next TLP: the rest of a request split at 4 KiB, or a new request
reg         rest_valid_reg;
reg  [63:0] rest_addr_reg;
reg  [3:0]  rest_len_reg;
reg  [63:0] rest_data_reg;
wire [63:0] b_addr = rest_valid_reg ? rest_addr_reg : s_req_addr;
wire [3:0]  b_len = rest_valid_reg ? rest_len_reg : s_req_len;
wire [63:0] b_data = rest_valid_reg ? rest_data_reg : s_req_data;
// bytes left in the 4 KiB page (only the last 7 bytes of a page can split an 8-byte write)
wire [12:0] page_left = 13'h1000 - {1'b0, b_addr[11:0]};
wire split = {9'd0, b_len} > page_left;
wire [3:0] b_len1 = split ? page_left[3:0] : b_len;
// dwords spanned, byte enables, payload in place
wire [1:0] off = b_addr[1:0];
wire [3:0] end_byte = {2'd0, off} + b_len1 - 4'd1;              // offset of the last byte (<= 10)
wire [1:0] ndw = end_byte[3:2];                                  // dwords - 1 (0..2)
wire [3:0] first_be_all = 4'b1111 << off;
wire [3:0] last_be_all = 4'b1111 >> (2'd3 - end_byte[1:0]);
wire [3:0] first_be = ndw == 2'd0 ? (first_be_all & last_be_all) : first_be_all;
wire [3:0] last_be = ndw == 2'd0 ? 4'b0000 : last_be_all;
wire [95:0] payload = {32'd0, b_data} << {off, 3'b000};
wire is_64 = b_addr[63:32] != 32'd0;

reg [127:0] hdr_reg;
reg [95:0]  payload_reg;
reg [1:0]   ndw_reg;
reg         valid_reg;
reg         second_reg;     // DATA_WIDTH 64, three dwords: the second beat is next

wire two_beats = DATA_WIDTH == 64 && ndw_reg == 2'd2;
wire last_beat = !two_beats || second_reg;
// bus mastering switched off while a TLP waits: it is dropped with the rest of its request
// (a TLP already started finishes)
wire out_valid = valid_reg && (bus_master_enable || second_reg);
wire drop = valid_reg && !out_valid;
wire beat_taken = out_valid && tx_imm_tlp_ready;
wire free = !valid_reg || (beat_taken && last_beat);
// (with bus mastering off, a request is dropped only in a cycle that ends no other, so that
// each gets its own done pulse)
wire take_ok = free && !drop && (bus_master_enable || !valid_reg);
wire load = take_ok && (rest_valid_reg || s_req_valid);

assign s_req_ready = take_ok && !rest_valid_reg;
assign idle = !valid_reg && !rest_valid_reg;

assign tx_imm_tlp_hdr = hdr_reg;
assign tx_imm_tlp_valid = out_valid;
assign tx_imm_tlp_sop = !second_reg;
assign tx_imm_tlp_eop = last_beat;

generate
    if (DATA_WIDTH == 64) begin : g_w64
        assign tx_imm_tlp_data = second_reg ? {32'd0, payload_reg[95:64]} : payload_reg[63:0];
        assign tx_imm_tlp_strb = second_reg ? 2'b01 : (ndw_reg == 2'd0 ? 2'b01 : 2'b11);
    end else begin : g_wide
        assign tx_imm_tlp_data = {{(DATA_WIDTH-96){1'b0}}, payload_reg};
        assign tx_imm_tlp_strb = {{(STRB_WIDTH-3){1'b0}}, ndw_reg == 2'd2, ndw_reg != 2'd0, 1'b1};
    end
endgenerate

always @(posedge clk) begin
    done <= 1'b0;
    if (drop) begin
        valid_reg <= 1'b0;
        rest_valid_reg <= 1'b0;
        done <= 1'b1;
    end
    if (beat_taken) begin
        if (last_beat) begin
            valid_reg <= 1'b0;
            second_reg <= 1'b0;
            // the request is done with its last TLP
            done <= !rest_valid_reg;
        end else begin
            second_reg <= 1'b1;
        end
    end
    if (load) begin
        if (bus_master_enable) begin
            valid_reg <= 1'b1;
            second_reg <= 1'b0;
            hdr_reg[127:96] <= {is_64 ? FMT_4DW_DATA : FMT_3DW_DATA, TYPE_MEM,
                                14'd0,                      // T9 TC T8 Attr LN TH TD EP Attr AT: all zero
                                8'd0, ndw + 2'd1};          // Length in dwords
            hdr_reg[95:64] <= {requester_id, 8'd0, last_be, first_be};   // tag 0
            hdr_reg[63:32] <= is_64 ? b_addr[63:32] : {b_addr[31:2], 2'b00};
            hdr_reg[31:0] <= is_64 ? {b_addr[31:2], 2'b00} : 32'd0;
            payload_reg <= payload;
            ndw_reg <= ndw;
            rest_valid_reg <= split;
            rest_addr_reg <= b_addr + {51'd0, page_left};
            rest_len_reg <= b_len - b_len1;
            rest_data_reg <= b_data >> {b_len1, 3'b000};
        end else begin
            rest_valid_reg <= 1'b0;
            done <= 1'b1;           // bus mastering off: nothing may go out
        end
    end
    if (rst) begin
        valid_reg <= 1'b0;
        second_reg <= 1'b0;
        rest_valid_reg <= 1'b0;
        done <= 1'b0;
    end
end

endmodule

`resetall
