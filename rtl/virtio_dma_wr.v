// SPDX-License-Identifier: Apache-2.0

`resetall
`timescale 1ns / 1ps
`default_nettype none

/*
 * DMA write engine: device writes to host memory.
 *
 * Each request (any byte address, 1..4096 bytes) is cut into memory write
 * TLPs at naturally aligned Max_Payload_Size boundaries, so none crosses
 * 4 KiB. The payload comes from the data stream (a packed byte stream that
 * requests consume in order, ending anywhere inside a beat) or, for an
 * immediate request, from imm_data.
 *
 * One byte rotator moves the bytes of the current source beat to their place
 * in the TLP payload (the first byte sits at its address offset within the
 * first dword); the bytes that spill past the end of the output beat are kept
 * for the next one. A beat leaves per cycle; a TLP that ends inside a source
 * beat hands the rest of that beat to the next TLP in the next cycle.
 *
 * With bus mastering off, TLPs are built and dropped (data consumed, nothing
 * sent). With flush high, a request (or the rest of one) is dropped at a TLP
 * boundary without consuming its data; a TLP already started is finished, with
 * zero bytes where the data stream has none (the producer is being aborted
 * too), and the position inside a partly taken beat is forgotten, so the
 * stream restarts at a beat boundary. Every accepted request gives exactly one
 * wr_done pulse, in request order, flushed ones included.
 */
module virtio_dma_wr #
(
    // TLP and data stream width: 64, 128 or 256
    parameter DATA_WIDTH = 64,
    // TLP strobe width (one bit per dword)
    parameter STRB_WIDTH = DATA_WIDTH/32,
    // data stream tkeep width (one bit per byte)
    parameter KEEP_WIDTH = DATA_WIDTH/8,
    // immediate data width: 64 (at most DATA_WIDTH)
    parameter IMM_WIDTH = 64
)
(
    input  wire                   clk,
    input  wire                   rst,

    /*
     * Write requests
     */
    input  wire [63:0]            s_wr_req_addr,
    input  wire [12:0]            s_wr_req_len,
    input  wire                   s_wr_req_imm,
    input  wire [IMM_WIDTH-1:0]   s_wr_req_imm_data,
    input  wire                   s_wr_req_valid,
    output wire                   s_wr_req_ready,

    /*
     * Write data byte stream
     */
    input  wire [DATA_WIDTH-1:0]  s_wr_data_tdata,
    input  wire [KEEP_WIDTH-1:0]  s_wr_data_tkeep,
    input  wire                   s_wr_data_tvalid,
    output wire                   s_wr_data_tready,
    input  wire                   s_wr_data_tlast,

    /*
     * Memory write TLPs to the host
     */
    output wire [DATA_WIDTH-1:0]  tx_wr_tlp_data,
    output wire [STRB_WIDTH-1:0]  tx_wr_tlp_strb,
    output wire [127:0]           tx_wr_tlp_hdr,
    output wire                   tx_wr_tlp_valid,
    output wire                   tx_wr_tlp_sop,
    output wire                   tx_wr_tlp_eop,
    input  wire                   tx_wr_tlp_ready,

    /*
     * Configuration
     */
    input  wire [15:0]            requester_id,
    input  wire                   bus_master_enable,
    input  wire [2:0]             max_payload_size,

    /*
     * Control and status
     */
    input  wire                   flush,
    output wire                   wr_done,
    output wire                   idle
);

// byte lane of a beat
localparam BYTE_LANE_WIDTH = $clog2(KEEP_WIDTH);
localparam [BYTE_LANE_WIDTH+1:0] BEAT_BYTES = KEEP_WIDTH[BYTE_LANE_WIDTH+1:0];

initial begin
    if (DATA_WIDTH != 64 && DATA_WIDTH != 128 && DATA_WIDTH != 256) begin
        $error("Error: DATA_WIDTH must be 64, 128 or 256 (instance %m)");
        $finish;
    end
    if (STRB_WIDTH * 32 != DATA_WIDTH || KEEP_WIDTH * 8 != DATA_WIDTH) begin
        $error("Error: STRB_WIDTH must be DATA_WIDTH/32 and KEEP_WIDTH DATA_WIDTH/8 (instance %m)");
        $finish;
    end
    if (IMM_WIDTH < 8 || IMM_WIDTH > DATA_WIDTH || IMM_WIDTH % 8 != 0) begin
        $error("Error: IMM_WIDTH must be whole bytes, at most DATA_WIDTH (instance %m)");
        $finish;
    end
end

// TLP fmt and type (PCIe base spec table 2-3)
localparam [2:0] FMT_3DW_DATA = 3'b010;
localparam [2:0] FMT_4DW_DATA = 3'b011;
localparam [4:0] TYPE_MEM     = 5'b00000;

// ---- byte helpers
// byte k of the result is byte (k - sh) mod KEEP_WIDTH of d: a barrel rotator
function [DATA_WIDTH-1:0] rotl_bytes(input [DATA_WIDTH-1:0] d, input [BYTE_LANE_WIDTH-1:0] sh);
    integer k;
    reg [BYTE_LANE_WIDTH-1:0] from;
    begin
        for (k = 0; k < KEEP_WIDTH; k = k + 1) begin
            from = k[BYTE_LANE_WIDTH-1:0] - sh;
            rotl_bytes[k*8 +: 8] = d[from*8 +: 8];
        end
    end
endfunction

// one bit per byte below n
function [KEEP_WIDTH-1:0] keep_below(input [BYTE_LANE_WIDTH+1:0] n);
    integer k;
    begin
        for (k = 0; k < KEEP_WIDTH; k = k + 1)
            keep_below[k] = k < n;
    end
endfunction

function [DATA_WIDTH-1:0] byte_mask(input [KEEP_WIDTH-1:0] keep);
    integer k;
    begin
        for (k = 0; k < KEEP_WIDTH; k = k + 1)
            byte_mask[k*8 +: 8] = {8{keep[k]}};
    end
endfunction

// one bit per dword holding any of the first n bytes
function [STRB_WIDTH-1:0] dwords_below(input [BYTE_LANE_WIDTH+1:0] n);
    integer k;
    begin
        for (k = 0; k < STRB_WIDTH; k = k + 1)
            dwords_below[k] = k * 4 < n;
    end
endfunction

// bytes of a tlast beat: contiguous from byte 0
function [BYTE_LANE_WIDTH+1:0] keep_count(input [KEEP_WIDTH-1:0] keep);
    integer k;
    begin
        keep_count = {(BYTE_LANE_WIDTH+2){1'b0}};
        for (k = 0; k < KEEP_WIDTH; k = k + 1)
            if (keep[k])
                keep_count = k[BYTE_LANE_WIDTH+1:0] + 1'b1;
    end
endfunction

// ---- one-entry request buffer in front of the request being split
reg                 next_valid_reg;
reg [63:0]          next_addr_reg;
reg [12:0]          next_len_reg;
reg                 next_imm_reg;
reg [IMM_WIDTH-1:0] next_imm_data_reg;

assign s_wr_req_ready = !next_valid_reg;

// ---- the request being split
reg                       req_active_reg;
reg [63:0]                req_addr_reg;       // address of the next TLP
reg [12:0]                req_rem_reg;        // bytes not yet given to a TLP
reg                       req_imm_reg;
reg [IMM_WIDTH-1:0]       req_imm_data_reg;
reg [BYTE_LANE_WIDTH-1:0] imm_pos_reg;        // next immediate byte

// ---- the TLP being built
reg                       tlp_active_reg;     // started, more bytes to take
reg [12:0]                tlp_rem_reg;        // bytes still to take
reg                       tlp_sop_reg;        // no beat of it has left yet
reg                       tlp_drop_reg;       // bus mastering was off at its start: drop it
reg                       tlp_req_end_reg;    // it is the request's last
reg [127:0]               tlp_hdr_reg;
reg                       tail_reg;           // its last beat is still in acc

// ---- packer: bytes [0, fill) of acc wait for the rest of their beat
reg [DATA_WIDTH-1:0]      acc_reg;
reg [BYTE_LANE_WIDTH-1:0] fill_reg;

// ---- data stream position: bytes of the current beat already taken
reg [BYTE_LANE_WIDTH-1:0] src_pos_reg;

// ---- output register
reg [DATA_WIDTH-1:0] out_data_reg;
reg [STRB_WIDTH-1:0] out_strb_reg;
reg [127:0]          out_hdr_reg;
reg                  out_valid_reg;
reg                  out_sop_reg;
reg                  out_eop_reg;
reg                  out_drop_reg;      // not sent (bus mastering off, flushed): accepted at once
reg                  out_req_end_reg;   // the request is done once this beat is accepted

reg wr_done_reg;

assign tx_wr_tlp_data = out_data_reg;
assign tx_wr_tlp_strb = out_strb_reg;
assign tx_wr_tlp_hdr = out_hdr_reg;
assign tx_wr_tlp_valid = out_valid_reg && !out_drop_reg;
assign tx_wr_tlp_sop = out_sop_reg;
assign tx_wr_tlp_eop = out_eop_reg;
assign wr_done = wr_done_reg;

wire out_accept = out_valid_reg && (out_drop_reg || tx_wr_tlp_ready);
wire out_free = !out_valid_reg || out_accept;

// ---- next TLP of the request: aligned Max_Payload_Size chunks (codes 6 and 7 are reserved: 4096)
wire [2:0]  mps_code = max_payload_size > 3'd5 ? 3'd5 : max_payload_size;
wire [12:0] mps_bytes = 13'd128 << mps_code;
wire [12:0] new_to_boundary = mps_bytes - ({1'b0, req_addr_reg[11:0]} & (mps_bytes - 13'd1));
wire [12:0] new_len = req_rem_reg < new_to_boundary ? req_rem_reg : new_to_boundary;
wire        new_req_end = req_rem_reg <= new_to_boundary;
// dwords touched: len/4, plus one or two for the first-dword offset and the remainder
wire [2:0]  new_dw_odd = {1'b0, req_addr_reg[1:0]} + {1'b0, new_len[1:0]};
wire [1:0]  new_dw_extra = new_dw_odd > 3'd4 ? 2'd2 : (new_dw_odd != 3'd0 ? 2'd1 : 2'd0);
wire [10:0] new_dw = new_len[12:2] + {9'd0, new_dw_extra};
wire [1:0]  new_end_offset = req_addr_reg[1:0] + new_len[1:0] - 2'd1;
wire [3:0]  new_first_be_full = 4'b1111 << req_addr_reg[1:0];
wire [3:0]  new_last_be_full = 4'b1111 >> (2'd3 - new_end_offset);
wire        new_one_dw = new_dw == 11'd1;
wire [3:0]  new_first_be = new_one_dw ? (new_first_be_full & new_last_be_full) : new_first_be_full;
wire [3:0]  new_last_be = new_one_dw ? 4'b0000 : new_last_be_full;
wire        new_4dw = req_addr_reg[63:32] != 32'd0;
wire [127:0] new_hdr = {new_4dw ? FMT_4DW_DATA : FMT_3DW_DATA, TYPE_MEM,
                        1'b0,           // T9
                        3'b000,         // TC
                        1'b0,           // T8
                        1'b0,           // Attr[2]
                        1'b0,           // LN
                        1'b0,           // TH
                        1'b0,           // TD
                        1'b0,           // EP
                        2'b00,          // Attr[1:0]
                        2'b00,          // AT
                        new_dw[9:0],    // Length (1024 dwords -> 0)
                        requester_id,   // Requester ID
                        8'd0,           // Tag (posted: unused)
                        new_last_be,    // Last DW BE
                        new_first_be,   // 1st DW BE
                        new_4dw ? {req_addr_reg[63:2], 2'b00} : {req_addr_reg[31:2], 2'b00, 32'd0}};

wire tlp_start = req_active_reg && !tlp_active_reg && !tail_reg;
// drop the request (or its rest) at a TLP boundary: flushed, or a zero-length request
wire drop_req = tlp_start && (flush || req_rem_reg == 13'd0);

// ---- the current TLP (registered, or the one starting now)
wire [12:0]                cur_rem = tlp_active_reg ? tlp_rem_reg : new_len;
wire [BYTE_LANE_WIDTH-1:0] cur_fill = tlp_active_reg ? fill_reg : {{(BYTE_LANE_WIDTH-2){1'b0}}, req_addr_reg[1:0]};
wire                       cur_sop = tlp_active_reg ? tlp_sop_reg : 1'b1;
wire                       cur_drop = tlp_active_reg ? tlp_drop_reg : !bus_master_enable;
wire                       cur_req_end = tlp_active_reg ? tlp_req_end_reg : new_req_end;
wire [127:0]               cur_hdr = tlp_active_reg ? tlp_hdr_reg : new_hdr;

// ---- source bytes: the immediate data, the current stream beat, or (flush, a
// started TLP and no stream data) a beat of zeros that consumes nothing
wire                       pad = flush && tlp_active_reg && !req_imm_reg && !s_wr_data_tvalid;
wire [BYTE_LANE_WIDTH+1:0] stream_count = (s_wr_data_tlast && !pad) ? keep_count(s_wr_data_tkeep) : BEAT_BYTES;
wire [BYTE_LANE_WIDTH+1:0] stream_avail = stream_count - {2'b00, src_pos_reg};
wire [DATA_WIDTH-1:0]      src_data = req_imm_reg ? {{(DATA_WIDTH-IMM_WIDTH){1'b0}}, req_imm_data_reg} :
                                      (pad ? {DATA_WIDTH{1'b0}} : s_wr_data_tdata);
wire [BYTE_LANE_WIDTH-1:0] src_pos = req_imm_reg ? imm_pos_reg : src_pos_reg;
wire                       src_valid = req_imm_reg || s_wr_data_tvalid || pad;
// bytes taken this cycle (an immediate request always has all of its bytes)
wire [BYTE_LANE_WIDTH+1:0] take = (req_imm_reg || {{(11-BYTE_LANE_WIDTH){1'b0}}, stream_avail} >= cur_rem) ?
                                  cur_rem[BYTE_LANE_WIDTH+1:0] : stream_avail;
wire                       tlp_end = {{(11-BYTE_LANE_WIDTH){1'b0}}, take} == cur_rem;

wire [DATA_WIDTH-1:0]      rot_data = rotl_bytes(src_data, cur_fill - src_pos);
wire [BYTE_LANE_WIDTH+1:0] total = {2'b00, cur_fill} + take;
wire                       full = total >= BEAT_BYTES;
wire                       emit = full || tlp_end;
wire                       need_tail = tlp_end && total > BEAT_BYTES;
wire [BYTE_LANE_WIDTH+1:0] over = total - BEAT_BYTES;
wire [KEEP_WIDTH-1:0]      keep_fill = keep_below({2'b00, cur_fill});
wire [DATA_WIDTH-1:0]      merged = (acc_reg & byte_mask(keep_fill)) |
                                    (rot_data & byte_mask(keep_below(total) & ~keep_fill));
wire [DATA_WIDTH-1:0]      overflow = rot_data & byte_mask(full ? keep_below(over) : {KEEP_WIDTH{1'b0}});

wire step = req_active_reg && !tail_reg && !drop_req && src_valid && (!emit || out_free);
wire pop = step && !req_imm_reg && !pad && take == stream_avail;
assign s_wr_data_tready = pop;

wire req_finish = (step && tlp_end && !need_tail && cur_req_end) ||
                  (tail_reg && out_free && tlp_req_end_reg) ||
                  (drop_req && out_free);
wire req_take_next = next_valid_reg && (!req_active_reg || req_finish);

always @(posedge clk) begin
    // ---- requests
    if (s_wr_req_valid && s_wr_req_ready) begin
        next_valid_reg <= 1'b1;
        next_addr_reg <= s_wr_req_addr;
        next_len_reg <= s_wr_req_len;
        next_imm_reg <= s_wr_req_imm;
        next_imm_data_reg <= s_wr_req_imm_data;
    end else if (req_take_next) begin
        next_valid_reg <= 1'b0;
    end

    if (req_finish)
        req_active_reg <= 1'b0;

    // ---- output register
    if (out_accept)
        out_valid_reg <= 1'b0;

    if (drop_req) begin
        if (out_free) begin
            out_valid_reg <= 1'b1;
            out_drop_reg <= 1'b1;
            out_req_end_reg <= 1'b1;
        end
    end else if (tail_reg) begin
        if (out_free) begin
            out_valid_reg <= 1'b1;
            out_data_reg <= acc_reg;
            out_strb_reg <= dwords_below({2'b00, fill_reg});
            out_sop_reg <= 1'b0;
            out_eop_reg <= 1'b1;
            out_drop_reg <= tlp_drop_reg;
            out_req_end_reg <= tlp_req_end_reg;
            tail_reg <= 1'b0;
            acc_reg <= {DATA_WIDTH{1'b0}};
            fill_reg <= {BYTE_LANE_WIDTH{1'b0}};
        end
    end else if (step) begin
        if (tlp_start) begin
            req_addr_reg <= req_addr_reg + {51'd0, new_len};
            req_rem_reg <= req_rem_reg - new_len;
            tlp_hdr_reg <= new_hdr;
        end
        tlp_active_reg <= !tlp_end;
        tlp_rem_reg <= cur_rem - {{(11-BYTE_LANE_WIDTH){1'b0}}, take};
        tlp_sop_reg <= cur_sop && !emit;
        tlp_drop_reg <= cur_drop;
        tlp_req_end_reg <= cur_req_end;

        if (req_imm_reg)
            imm_pos_reg <= imm_pos_reg + take[BYTE_LANE_WIDTH-1:0];
        else if (pad)
            src_pos_reg <= src_pos_reg;
        else if (pop)
            src_pos_reg <= {BYTE_LANE_WIDTH{1'b0}};
        else
            src_pos_reg <= src_pos_reg + take[BYTE_LANE_WIDTH-1:0];

        if (emit) begin
            out_valid_reg <= 1'b1;
            out_data_reg <= merged;
            out_strb_reg <= full ? {STRB_WIDTH{1'b1}} : dwords_below(total);
            out_hdr_reg <= cur_hdr;
            out_sop_reg <= cur_sop;
            out_eop_reg <= tlp_end && !need_tail;
            out_drop_reg <= cur_drop;
            out_req_end_reg <= tlp_end && !need_tail && cur_req_end;
            acc_reg <= overflow;
            fill_reg <= full ? over[BYTE_LANE_WIDTH-1:0] : {BYTE_LANE_WIDTH{1'b0}};
            tail_reg <= need_tail;
        end else begin
            acc_reg <= merged;
            fill_reg <= total[BYTE_LANE_WIDTH-1:0];
        end
    end

    // flush between TLPs: the producer abandons its packet, so forget the partly taken beat
    if (flush && !tlp_active_reg && !tail_reg)
        src_pos_reg <= {BYTE_LANE_WIDTH{1'b0}};

    if (req_take_next) begin
        req_active_reg <= 1'b1;
        req_addr_reg <= next_addr_reg;
        req_rem_reg <= next_len_reg;
        req_imm_reg <= next_imm_reg;
        req_imm_data_reg <= next_imm_data_reg;
        imm_pos_reg <= {BYTE_LANE_WIDTH{1'b0}};
    end

    wr_done_reg <= out_accept && out_req_end_reg;

    if (rst) begin
        next_valid_reg <= 1'b0;
        req_active_reg <= 1'b0;
        tlp_active_reg <= 1'b0;
        tail_reg <= 1'b0;
        acc_reg <= {DATA_WIDTH{1'b0}};
        fill_reg <= {BYTE_LANE_WIDTH{1'b0}};
        src_pos_reg <= {BYTE_LANE_WIDTH{1'b0}};
        out_valid_reg <= 1'b0;
        wr_done_reg <= 1'b0;
    end
end

assign idle = !next_valid_reg && !req_active_reg && !out_valid_reg;

endmodule

`resetall
