// SPDX-License-Identifier: Apache-2.0

`resetall
`timescale 1ns / 1ps
`default_nettype none

/*
 * DMA read engine: device reads of host memory.
 *
 * Each request (any byte address, 1..4096 bytes) is cut into memory read TLPs
 * at naturally aligned boundaries of min(MAX_READ_TLP, Max_Read_Request_Size)
 * bytes, so none crosses 4 KiB. Every TLP owns one buffer slot of MAX_READ_TLP
 * bytes; slots are taken and drained in request order (a ring), so the answer
 * comes back in request order whatever order the completions arrive in.
 *
 * Tag = {generation, slot}: the low bits name the slot, the high bits count
 * the slot's uses, so a late completion for a tag that timed out finds a
 * different tag in its slot and is dropped. A tag whose request the host may
 * still answer (timed out, or failed by a poisoned or malformed piece that
 * was not the last) is retired (not issued again) until the completion that
 * ends its request turns up, or rst; only when every generation of a slot is
 * retired are its retirements forgotten, so the engine never stalls on them.
 * With NUM_TAGS = 256 there is one generation and such a tag is reused at
 * once (which PCIe allows after a timeout).
 *
 * Completion data lands dword-aligned at its address offset inside the slot
 * (position = slot start + TLP length - byte count remaining; the lower
 * address is checked against it). The buffer is one 32-bit RAM per dword lane,
 * so a beat that starts at any dword is written in one cycle. The drain side
 * reads a slot a RAM word per cycle and packs the bytes with a single byte
 * rotator into packets: one per destination, made of that destination's
 * requests up to the one with last. Packets of different destinations may
 * interleave beat by beat (each has its own accumulator); a beat never holds
 * bytes of two packets.
 *
 * Failures (UR/CA/CRS, poisoned, malformed, timeout, bus mastering off) still
 * produce every byte of the TLP, as zeros, and set tuser on the packet's last
 * beat; each one pulses error.
 */
module virtio_dma_rd #
(
    // TLP and response stream data width: 64, 128 or 256
    parameter DATA_WIDTH = 64,
    // TLP strobe width (one bit per dword)
    parameter STRB_WIDTH = DATA_WIDTH/32,
    // response stream tkeep width (one bit per byte)
    parameter KEEP_WIDTH = DATA_WIDTH/8,
    // read TLPs (tags, buffer slots) in flight: power of two, 8..256
    parameter NUM_TAGS = 16,
    // largest read TLP in bytes before the MRRS cap: power of two, 128..4096
    parameter MAX_READ_TLP = 512,
    // width of the destination field copied from requests to the response
    parameter DEST_WIDTH = 2,
    // completion timeout in clock cycles (fires after CPL_TIMEOUT to 1.25 x CPL_TIMEOUT + NUM_TAGS + 4)
    parameter CPL_TIMEOUT = 65536
)
(
    input  wire                   clk,
    input  wire                   rst,

    /*
     * Read requests
     */
    input  wire [63:0]            s_rd_req_addr,
    input  wire [12:0]            s_rd_req_len,
    input  wire [DEST_WIDTH-1:0]  s_rd_req_dest,
    input  wire                   s_rd_req_last,
    input  wire                   s_rd_req_valid,
    output wire                   s_rd_req_ready,

    /*
     * Read response byte stream
     */
    output wire [DATA_WIDTH-1:0]  m_rd_rsp_tdata,
    output wire [KEEP_WIDTH-1:0]  m_rd_rsp_tkeep,
    output wire                   m_rd_rsp_tvalid,
    input  wire                   m_rd_rsp_tready,
    output wire                   m_rd_rsp_tlast,
    output wire [DEST_WIDTH-1:0]  m_rd_rsp_tdest,
    output wire                   m_rd_rsp_tuser,

    /*
     * Memory read TLPs to the host (header only)
     */
    output wire [DATA_WIDTH-1:0]  tx_rd_tlp_data,
    output wire [STRB_WIDTH-1:0]  tx_rd_tlp_strb,
    output wire [127:0]           tx_rd_tlp_hdr,
    output wire                   tx_rd_tlp_valid,
    output wire                   tx_rd_tlp_sop,
    output wire                   tx_rd_tlp_eop,
    input  wire                   tx_rd_tlp_ready,

    /*
     * Completions from the host
     */
    input  wire [DATA_WIDTH-1:0]  rx_cpl_tlp_data,
    input  wire [STRB_WIDTH-1:0]  rx_cpl_tlp_strb,
    input  wire [127:0]           rx_cpl_tlp_hdr,
    input  wire                   rx_cpl_tlp_valid,
    input  wire                   rx_cpl_tlp_sop,
    input  wire                   rx_cpl_tlp_eop,
    output wire                   rx_cpl_tlp_ready,

    /*
     * Configuration
     */
    input  wire [15:0]            requester_id,
    input  wire                   bus_master_enable,
    input  wire [2:0]             max_read_request_size,

    /*
     * Status
     */
    input  wire                   flush,
    output wire                   idle,
    output wire                   error
);

// byte lane of the response stream / RAM word
localparam BYTE_LANE_WIDTH = $clog2(KEEP_WIDTH);
// dword lane of a TLP beat / RAM word
localparam DW_LANE_WIDTH = $clog2(STRB_WIDTH);
// slot index (the low bits of the tag)
localparam SLOT_WIDTH = $clog2(NUM_TAGS);
// uses of a slot that get distinct tags (the high bits of the tag)
localparam GENS = 256 / NUM_TAGS;
localparam GEN_WIDTH = GENS > 1 ? $clog2(GENS) : 1;
// byte offset inside a slot
localparam OFFSET_WIDTH = $clog2(MAX_READ_TLP);
// RAM word inside a slot
localparam WORD_WIDTH = OFFSET_WIDTH - BYTE_LANE_WIDTH;
localparam RAM_ADDR_WIDTH = SLOT_WIDTH + WORD_WIDTH;
localparam RAM_DEPTH = 2**RAM_ADDR_WIDTH;
// response packets assembled at once, one per destination
localparam NUM_DESTS = 2**DEST_WIDTH;
// completion timeout: every slot counts ticks of CPL_TIMEOUT/4 cycles and fails at the fifth
localparam TMO_TICK = (CPL_TIMEOUT + 3) / 4;
localparam TMO_TICK_WIDTH = $clog2(TMO_TICK + 1);
localparam [2:0] TMO_LIMIT = 3'd5;

localparam [12:0] MAX_READ_TLP_BYTES = MAX_READ_TLP[12:0];
localparam [BYTE_LANE_WIDTH+1:0] BEAT_BYTES = KEEP_WIDTH[BYTE_LANE_WIDTH+1:0];
localparam TMO_TICK_LAST = TMO_TICK - 1;
localparam [TMO_TICK_WIDTH-1:0] TMO_RELOAD = TMO_TICK_LAST[TMO_TICK_WIDTH-1:0];

initial begin
    if (DATA_WIDTH != 64 && DATA_WIDTH != 128 && DATA_WIDTH != 256) begin
        $error("Error: DATA_WIDTH must be 64, 128 or 256 (instance %m)");
        $finish;
    end
    if (STRB_WIDTH * 32 != DATA_WIDTH || KEEP_WIDTH * 8 != DATA_WIDTH) begin
        $error("Error: STRB_WIDTH must be DATA_WIDTH/32 and KEEP_WIDTH DATA_WIDTH/8 (instance %m)");
        $finish;
    end
    if (NUM_TAGS < 8 || NUM_TAGS > 256 || 2**SLOT_WIDTH != NUM_TAGS) begin
        $error("Error: NUM_TAGS must be a power of two, 8..256 (instance %m)");
        $finish;
    end
    if (MAX_READ_TLP < 128 || MAX_READ_TLP > 4096 || 2**OFFSET_WIDTH != MAX_READ_TLP) begin
        $error("Error: MAX_READ_TLP must be a power of two, 128..4096 (instance %m)");
        $finish;
    end
    if (DEST_WIDTH < 1) begin
        $error("Error: DEST_WIDTH must be at least 1 (instance %m)");
        $finish;
    end
    if (CPL_TIMEOUT < 4 * NUM_TAGS) begin
        $error("Error: CPL_TIMEOUT must be at least 4 x NUM_TAGS cycles (instance %m)");
        $finish;
    end
end

// TLP fmt and type (PCIe base spec table 2-3)
localparam [2:0] FMT_3DW      = 3'b000;
localparam [2:0] FMT_4DW      = 3'b001;
localparam [2:0] FMT_3DW_DATA = 3'b010;
localparam [4:0] TYPE_MEM     = 5'b00000;
localparam [4:0] TYPE_CPL     = 5'b01010;
localparam [2:0] CPL_STATUS_SC = 3'b000;

// slot states
localparam [1:0]
    SLOT_FREE        = 2'd0,  // not in use; the next one in ring order can be taken
    SLOT_PENDING     = 2'd1,  // its MRd waits in the tx register
    SLOT_OUTSTANDING = 2'd2,  // MRd sent; completions expected, timeout running
    SLOT_DONE        = 2'd3;  // every byte is in the buffer (or the TLP failed): ready to drain

integer g;
integer i;

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

// ---- slot table: control state in flops (reset), per-TLP parameters in RAM (not reset)
reg [1:0]           slot_state_reg [0:NUM_TAGS-1];
reg [NUM_TAGS-1:0]  slot_err_reg;                     // the TLP failed: its bytes read as zeros
reg [2:0]           slot_tmo_reg [0:NUM_TAGS-1];      // timeout ticks while outstanding
reg [GEN_WIDTH-1:0] slot_gen_reg [0:NUM_TAGS-1];      // tag high bits of the slot's current use
reg [255:0]         tag_retired_reg;                  // timed-out tags, by tag value

reg [OFFSET_WIDTH-1:0] slot_start_mem [0:NUM_TAGS-1];  // byte offset of the first byte in the slot
reg [OFFSET_WIDTH-1:0] slot_len_mem [0:NUM_TAGS-1];    // bytes of the TLP, modulo MAX_READ_TLP
reg [12:0]             slot_rem_mem [0:NUM_TAGS-1];    // byte count the next completion must carry
reg                    slot_pkt_last_mem [0:NUM_TAGS-1]; // the TLP ends a response packet
reg [DEST_WIDTH-1:0]   slot_dest_mem [0:NUM_TAGS-1];

reg [SLOT_WIDTH-1:0] alloc_ptr_reg;   // next slot to take
reg [SLOT_WIDTH-1:0] drain_ptr_reg;   // oldest slot not yet drained

// =====================================================================
// Requests -> MRd TLPs
// =====================================================================

// one-entry request buffer in front of the request being split
reg                  next_valid_reg;
reg [63:0]           next_addr_reg;
reg [12:0]           next_len_reg;
reg [DEST_WIDTH-1:0] next_dest_reg;
reg                  next_last_reg;

reg                  req_active_reg;
reg [63:0]           req_addr_reg;     // address of the next TLP
reg [12:0]           req_rem_reg;      // bytes not yet given to a TLP
reg [DEST_WIDTH-1:0] req_dest_reg;
reg                  req_last_reg;
reg                  req_bme_err_reg;  // this request already reported bus mastering off

assign s_rd_req_ready = !next_valid_reg;

// MRd output register
reg [127:0]          tx_hdr_reg;
reg                  tx_valid_reg;
reg [SLOT_WIDTH-1:0] tx_slot_reg;

assign tx_rd_tlp_data = {DATA_WIDTH{1'b0}};
assign tx_rd_tlp_strb = {STRB_WIDTH{1'b0}};
assign tx_rd_tlp_hdr = tx_hdr_reg;
assign tx_rd_tlp_valid = tx_valid_reg;
assign tx_rd_tlp_sop = 1'b1;
assign tx_rd_tlp_eop = 1'b1;

wire tx_accept = tx_valid_reg && tx_rd_tlp_ready;
wire tx_free = !tx_valid_reg || tx_rd_tlp_ready;

// TLP size: aligned chunks of min(MAX_READ_TLP, MRRS) bytes (codes 6 and 7 are reserved: 4096)
wire [2:0]  mrrs_code = max_read_request_size > 3'd5 ? 3'd5 : max_read_request_size;
wire [12:0] mrrs_bytes = 13'd128 << mrrs_code;
wire [12:0] tlp_max = mrrs_bytes < MAX_READ_TLP_BYTES ? mrrs_bytes : MAX_READ_TLP_BYTES;
wire [12:0] gen_to_boundary = tlp_max - ({1'b0, req_addr_reg[11:0]} & (tlp_max - 13'd1));
wire [12:0] gen_len = req_rem_reg < gen_to_boundary ? req_rem_reg : gen_to_boundary;
wire        gen_req_done = req_rem_reg <= gen_to_boundary;
// dwords touched: len/4, plus one or two for the first-dword offset and the remainder
wire [2:0]  gen_dw_odd = {1'b0, req_addr_reg[1:0]} + {1'b0, gen_len[1:0]};
wire [1:0]  gen_dw_extra = gen_dw_odd > 3'd4 ? 2'd2 : (gen_dw_odd != 3'd0 ? 2'd1 : 2'd0);
wire [10:0] gen_dw = gen_len[12:2] + {9'd0, gen_dw_extra};
wire [1:0]  gen_end_offset = req_addr_reg[1:0] + gen_len[1:0] - 2'd1;
wire [3:0]  gen_first_be_full = 4'b1111 << req_addr_reg[1:0];
wire [3:0]  gen_last_be_full = 4'b1111 >> (2'd3 - gen_end_offset);
wire        gen_one_dw = gen_dw == 11'd1;
wire [3:0]  gen_first_be = gen_one_dw ? (gen_first_be_full & gen_last_be_full) : gen_first_be_full;
wire [3:0]  gen_last_be = gen_one_dw ? 4'b0000 : gen_last_be_full;
wire        gen_4dw = req_addr_reg[63:32] != 32'd0;

// tag of the next use of the slot at alloc_ptr, skipping retired ones
wire [NUM_TAGS-1:0]  alloc_onehot = {{(NUM_TAGS-1){1'b0}}, 1'b1} << alloc_ptr_reg;
wire [255:0]         alloc_tags = {GENS{alloc_onehot}};   // every tag value of that slot
wire [GEN_WIDTH-1:0] gen_gen;
wire [7:0]           gen_tag;
wire                 gen_retired;      // that tag timed out and has not been answered
wire                 gen_all_retired = (tag_retired_reg & alloc_tags) == alloc_tags;

generate
    if (GENS > 1) begin : g_gen
        assign gen_gen = slot_gen_reg[alloc_ptr_reg] + 1'b1;
        assign gen_tag = {gen_gen, alloc_ptr_reg};
        assign gen_retired = tag_retired_reg[gen_tag] && !gen_all_retired;
    end else begin : g_no_gen
        assign gen_gen = 1'b0;
        assign gen_tag = alloc_ptr_reg;
        assign gen_retired = 1'b0;
    end
endgenerate

wire gen_try = req_active_reg && slot_state_reg[alloc_ptr_reg] == SLOT_FREE;
wire gen_skip = gen_try && gen_retired;
wire gen_bme_err = !bus_master_enable && !req_bme_err_reg;

// error sources of the completion path and the timeout scanner (defined below)
wire cpl_err;
wire tmo_fire;

wire gen_go = gen_try && !gen_retired &&
    (bus_master_enable ? tx_free : !(gen_bme_err && (cpl_err || tmo_fire)));

wire req_take_next = next_valid_reg && (!req_active_reg || (gen_go && gen_req_done));

always @(posedge clk) begin
    if (s_rd_req_valid && s_rd_req_ready) begin
        next_valid_reg <= 1'b1;
        next_addr_reg <= s_rd_req_addr;
        next_len_reg <= s_rd_req_len;
        next_dest_reg <= s_rd_req_dest;
        next_last_reg <= s_rd_req_last;
    end else if (req_take_next) begin
        next_valid_reg <= 1'b0;
    end

    if (gen_go) begin
        req_addr_reg <= req_addr_reg + {51'd0, gen_len};
        req_rem_reg <= req_rem_reg - gen_len;
        if (!bus_master_enable)
            req_bme_err_reg <= 1'b1;
        if (gen_req_done)
            req_active_reg <= 1'b0;
    end

    if (req_take_next) begin
        req_active_reg <= 1'b1;
        req_addr_reg <= next_addr_reg;
        req_rem_reg <= next_len_reg;
        req_dest_reg <= next_dest_reg;
        req_last_reg <= next_last_reg;
        req_bme_err_reg <= 1'b0;
    end

    if (tx_accept)
        tx_valid_reg <= 1'b0;
    if (gen_go && bus_master_enable) begin
        tx_valid_reg <= 1'b1;
        tx_slot_reg <= alloc_ptr_reg;
        tx_hdr_reg <= {gen_4dw ? FMT_4DW : FMT_3DW, TYPE_MEM,
                       1'b0,          // T9
                       3'b000,        // TC
                       1'b0,          // T8
                       1'b0,          // Attr[2]
                       1'b0,          // LN
                       1'b0,          // TH
                       1'b0,          // TD
                       1'b0,          // EP
                       2'b00,         // Attr[1:0]
                       2'b00,         // AT
                       gen_dw[9:0],   // Length (1024 dwords -> 0)
                       requester_id,  // Requester ID
                       gen_tag,       // Tag
                       gen_last_be,   // Last DW BE
                       gen_first_be,  // 1st DW BE
                       gen_4dw ? {req_addr_reg[63:2], 2'b00} : {req_addr_reg[31:2], 2'b00, 32'd0}};
    end

    if (gen_go) begin
        slot_start_mem[alloc_ptr_reg] <= req_addr_reg[OFFSET_WIDTH-1:0];
        slot_len_mem[alloc_ptr_reg] <= gen_len[OFFSET_WIDTH-1:0];
        slot_pkt_last_mem[alloc_ptr_reg] <= gen_req_done && req_last_reg;
        slot_dest_mem[alloc_ptr_reg] <= req_dest_reg;
    end

    if (rst) begin
        next_valid_reg <= 1'b0;
        req_active_reg <= 1'b0;
        tx_valid_reg <= 1'b0;
    end
end

// =====================================================================
// Completions -> buffer
// =====================================================================

assign rx_cpl_tlp_ready = 1'b1;   // never stalled: the buffer has a write port of its own

wire [2:0]  cpl_fmt = rx_cpl_tlp_hdr[127:125];          // Fmt
wire [4:0]  cpl_type = rx_cpl_tlp_hdr[124:120];         // Type
wire        cpl_t9 = rx_cpl_tlp_hdr[119];               // T9 (10-bit tag)
wire        cpl_t8 = rx_cpl_tlp_hdr[115];               // T8 (10-bit tag)
wire        cpl_ep = rx_cpl_tlp_hdr[110];               // EP (poisoned)
wire [9:0]  cpl_length = rx_cpl_tlp_hdr[105:96];        // Length (0 means 1024)
wire [2:0]  cpl_status = rx_cpl_tlp_hdr[79:77];         // Completion Status
wire [11:0] cpl_byte_count = rx_cpl_tlp_hdr[75:64];     // Byte Count (0 means 4096)
wire [15:0] cpl_requester_id = rx_cpl_tlp_hdr[63:48];   // Requester ID
wire [7:0]  cpl_tag = rx_cpl_tlp_hdr[47:40];            // Tag
wire [6:0]  cpl_lower_addr = rx_cpl_tlp_hdr[38:32];     // Lower Address

wire rx_beat = rx_cpl_tlp_valid;
wire rx_hdr_beat = rx_beat && rx_cpl_tlp_sop;

wire [SLOT_WIDTH-1:0] c_slot = cpl_tag[SLOT_WIDTH-1:0];
wire [GEN_WIDTH-1:0]  c_gen;
wire                  c_late = tag_retired_reg[cpl_tag];   // a completion for a timed-out tag

generate
    if (GENS > 1) begin : g_cpl_gen
        assign c_gen = cpl_tag[7:SLOT_WIDTH];
    end else begin : g_cpl_no_gen
        assign c_gen = 1'b0;
    end
endgenerate

wire c_is_cpl = cpl_type == TYPE_CPL && (cpl_fmt == FMT_3DW || cpl_fmt == FMT_3DW_DATA);
wire c_ours = c_is_cpl && !cpl_t8 && !cpl_t9 && cpl_requester_id == requester_id;
wire c_hit = c_ours && slot_state_reg[c_slot] == SLOT_OUTSTANDING && slot_gen_reg[c_slot] == c_gen;

wire [12:0] c_byte_count = {cpl_byte_count == 12'd0, cpl_byte_count};
wire [12:0] c_bytes = {cpl_length == 10'd0, cpl_length, 2'b00};
wire [12:0] c_carried = c_bytes - {11'd0, cpl_lower_addr[1:0]};   // from the first byte to the end of the payload
wire        c_final = c_carried >= c_byte_count;
wire        c_status_ok = cpl_status == CPL_STATUS_SC && !cpl_ep;

wire [OFFSET_WIDTH-1:0] c_start = slot_start_mem[c_slot];
wire [OFFSET_WIDTH-1:0] c_len = slot_len_mem[c_slot];
wire [12:0]             c_rem = slot_rem_mem[c_slot];
// byte offset in the slot of the first byte carried (modulo MAX_READ_TLP: a full slot has length 0)
wire [OFFSET_WIDTH-1:0] c_pos = c_start + c_len - c_byte_count[OFFSET_WIDTH-1:0];
wire [12:0]             c_rem_next = c_byte_count - c_carried;

wire c_shape_ok = cpl_fmt == FMT_3DW_DATA &&
                  c_byte_count == c_rem &&
                  c_pos[6:0] == cpl_lower_addr &&
                  (!c_final || c_carried < c_byte_count + 13'd4);

wire c_good = rx_hdr_beat && c_hit && c_status_ok && c_shape_ok;
wire c_fail = rx_hdr_beat && c_hit && !(c_status_ok && c_shape_ok);
wire c_stray = rx_hdr_beat && !c_hit;
// a late completion that ends its request frees the retired tag
wire c_unretire = c_stray && c_ours && c_late && (cpl_status != CPL_STATUS_SC || c_final);

assign cpl_err = c_fail || c_stray;

// context of the completion whose beats are arriving
reg                  rx_in_tlp_reg;
reg                  rx_write_reg;
reg                  rx_final_reg;
reg [SLOT_WIDTH-1:0] rx_slot_reg;
reg [WORD_WIDTH-1:0] rx_word_reg;
reg [DW_LANE_WIDTH-1:0] rx_lane_reg;

// write stage: one beat, rotated to its dword lanes, written next cycle
reg                  wr_valid_reg;
reg                  wr_set_done_reg;
reg [DATA_WIDTH-1:0] wr_data_reg;
reg [STRB_WIDTH-1:0] wr_strb_reg;
reg [SLOT_WIDTH-1:0] wr_slot_reg;
reg [WORD_WIDTH-1:0] wr_word_reg;
reg [DW_LANE_WIDTH-1:0] wr_lane_reg;

wire [WORD_WIDTH-1:0]    c_word = c_pos[OFFSET_WIDTH-1:BYTE_LANE_WIDTH];
wire [DW_LANE_WIDTH-1:0] c_lane = c_pos[BYTE_LANE_WIDTH-1:2];

always @(posedge clk) begin
    wr_valid_reg <= 1'b0;
    wr_set_done_reg <= 1'b0;
    wr_data_reg <= rx_cpl_tlp_data;
    wr_strb_reg <= rx_cpl_tlp_strb;

    if (rx_hdr_beat) begin
        rx_in_tlp_reg <= !rx_cpl_tlp_eop;
        rx_write_reg <= c_good;
        rx_final_reg <= c_final;
        rx_slot_reg <= c_slot;
        rx_word_reg <= c_word + 1'b1;
        rx_lane_reg <= c_lane;
        wr_valid_reg <= c_good;
        wr_set_done_reg <= c_good && c_final && rx_cpl_tlp_eop;
        wr_slot_reg <= c_slot;
        wr_word_reg <= c_word;
        wr_lane_reg <= c_lane;
    end else if (rx_beat && rx_in_tlp_reg) begin
        rx_in_tlp_reg <= !rx_cpl_tlp_eop;
        rx_word_reg <= rx_word_reg + 1'b1;
        wr_valid_reg <= rx_write_reg;
        wr_set_done_reg <= rx_write_reg && rx_final_reg && rx_cpl_tlp_eop;
        wr_slot_reg <= rx_slot_reg;
        wr_word_reg <= rx_word_reg;
        wr_lane_reg <= rx_lane_reg;
    end

    if (c_good)
        slot_rem_mem[c_slot] <= c_final ? 13'd0 : c_rem_next;
    if (gen_go)
        slot_rem_mem[alloc_ptr_reg] <= gen_len;

    if (rst) begin
        rx_in_tlp_reg <= 1'b0;
        wr_valid_reg <= 1'b0;
        wr_set_done_reg <= 1'b0;
    end
end

// ---- the buffer: one 32-bit RAM per dword lane, written at its own address
wire [RAM_ADDR_WIDTH-1:0] rd_addr;
wire                      rd_en;
wire [DATA_WIDTH-1:0]     rd_data;

genvar j;
generate
    for (j = 0; j < STRB_WIDTH; j = j + 1) begin : g_lane
        localparam [DW_LANE_WIDTH-1:0] LANE = j;
        // beat dword that lands in this lane, and whether it belongs to the next RAM word
        wire [DW_LANE_WIDTH:0]   diff = {1'b0, LANE} - {1'b0, wr_lane_reg};
        wire [DW_LANE_WIDTH-1:0] src = diff[DW_LANE_WIDTH-1:0];
        wire                     wraps = diff[DW_LANE_WIDTH];   // borrow: lane < first lane
        wire [WORD_WIDTH-1:0]    word = wr_word_reg + {{(WORD_WIDTH-1){1'b0}}, wraps};

        reg [31:0] mem [0:RAM_DEPTH-1];
        reg [31:0] rd_data_reg;

        always @(posedge clk) begin
            if (wr_valid_reg && wr_strb_reg[src])
                mem[{wr_slot_reg, word}] <= wr_data_reg[src*32 +: 32];
            if (rd_en)
                rd_data_reg <= mem[rd_addr];
        end

        assign rd_data[j*32 +: 32] = rd_data_reg;

        integer k;
        initial begin
            for (k = 0; k < RAM_DEPTH; k = k + 1)
                mem[k] = 32'd0;
            rd_data_reg = 32'd0;
        end
    end
endgenerate

// =====================================================================
// Completion timeout
// =====================================================================

reg [TMO_TICK_WIDTH-1:0] tmo_count_reg;
reg [SLOT_WIDTH-1:0]     tmo_scan_reg;

wire tmo_tick = tmo_count_reg == {TMO_TICK_WIDTH{1'b0}};
wire [7:0] tmo_tag;   // tag of the slot under the scanner

generate
    if (GENS > 1) begin : g_tmo_gen
        assign tmo_tag = {slot_gen_reg[tmo_scan_reg], tmo_scan_reg};
    end else begin : g_tmo_no_gen
        assign tmo_tag = tmo_scan_reg;
    end
endgenerate
wire tmo_expired = slot_state_reg[tmo_scan_reg] == SLOT_OUTSTANDING && slot_tmo_reg[tmo_scan_reg] == TMO_LIMIT;
// a completion for this slot is being received or written: let it finish first
wire tmo_busy = (rx_hdr_beat && c_slot == tmo_scan_reg) ||
                (rx_in_tlp_reg && rx_slot_reg == tmo_scan_reg) ||
                (wr_valid_reg && wr_slot_reg == tmo_scan_reg);
assign tmo_fire = tmo_expired && !tmo_busy && !cpl_err;

// =====================================================================
// Drain: slots in ring order -> RAM reads -> byte packer -> response
// =====================================================================

reg                  drain_fresh_reg;   // the next word is the first of the slot
reg [WORD_WIDTH-1:0] drain_word_reg;

wire [OFFSET_WIDTH-1:0] d_start = slot_start_mem[drain_ptr_reg];
wire [OFFSET_WIDTH-1:0] d_len = slot_len_mem[drain_ptr_reg];
wire [OFFSET_WIDTH-1:0] d_end = d_start + d_len - 1'b1;
wire [WORD_WIDTH-1:0]   d_first_word = d_start[OFFSET_WIDTH-1:BYTE_LANE_WIDTH];
wire [WORD_WIDTH-1:0]   d_last_word = d_end[OFFSET_WIDTH-1:BYTE_LANE_WIDTH];
wire [WORD_WIDTH-1:0]   d_word = drain_fresh_reg ? d_first_word : drain_word_reg;
wire                    d_last = d_word == d_last_word;
wire [BYTE_LANE_WIDTH-1:0] d_lo = drain_fresh_reg ? d_start[BYTE_LANE_WIDTH-1:0] : {BYTE_LANE_WIDTH{1'b0}};
wire [BYTE_LANE_WIDTH-1:0] d_hi = d_last ? d_end[BYTE_LANE_WIDTH-1:0] : {BYTE_LANE_WIDTH{1'b1}};
wire [BYTE_LANE_WIDTH:0]   d_count = {1'b0, d_hi} - {1'b0, d_lo} + 1'b1;

// read stage: the RAM word and what to take from it
reg                       s1_valid_reg;
reg [BYTE_LANE_WIDTH-1:0] s1_lo_reg;
reg [BYTE_LANE_WIDTH:0]   s1_count_reg;
reg                       s1_pkt_last_reg;
reg                       s1_err_reg;
reg [DEST_WIDTH-1:0]      s1_dest_reg;

wire s1_ready;
wire d_go = slot_state_reg[drain_ptr_reg] == SLOT_DONE && s1_ready;

assign rd_en = d_go;
assign rd_addr = {drain_ptr_reg, d_word};

// packer, one accumulator per destination (packets of different destinations
// interleave beat by beat): bytes [0, fill) of acc wait for the rest of their beat
reg [DATA_WIDTH-1:0]      pk_acc_reg [0:NUM_DESTS-1];
reg [BYTE_LANE_WIDTH-1:0] pk_fill_reg [0:NUM_DESTS-1];
reg [NUM_DESTS-1:0]       pk_err_reg;       // the open packet has a failed part
reg                       pk_tail_reg;      // a last beat is still to be sent from acc
reg [DEST_WIDTH-1:0]      pk_tail_dest_reg;

// response output register
reg [DATA_WIDTH-1:0] m_data_reg;
reg [KEEP_WIDTH-1:0] m_keep_reg;
reg                  m_valid_reg;
reg                  m_last_reg;
reg [DEST_WIDTH-1:0] m_dest_reg;
reg                  m_user_reg;

assign m_rd_rsp_tdata = m_data_reg;
assign m_rd_rsp_tkeep = m_keep_reg;
assign m_rd_rsp_tvalid = m_valid_reg;
assign m_rd_rsp_tlast = m_last_reg;
assign m_rd_rsp_tdest = m_dest_reg;
assign m_rd_rsp_tuser = m_user_reg;

wire m_free = !m_valid_reg || m_rd_rsp_tready;

wire [DEST_WIDTH-1:0]      pk_dest = pk_tail_reg ? pk_tail_dest_reg : s1_dest_reg;
wire [DATA_WIDTH-1:0]      pk_acc = pk_acc_reg[pk_dest];
wire [BYTE_LANE_WIDTH-1:0] pk_fill = pk_fill_reg[pk_dest];
wire                       pk_err = pk_err_reg[pk_dest];
wire [DATA_WIDTH-1:0]      pk_word = s1_err_reg ? {DATA_WIDTH{1'b0}} : rd_data;
wire [BYTE_LANE_WIDTH-1:0] pk_rot = pk_fill - s1_lo_reg;
wire [DATA_WIDTH-1:0]      pk_rot_data = rotl_bytes(pk_word, pk_rot);
wire [BYTE_LANE_WIDTH+1:0] pk_total = {2'b00, pk_fill} + {1'b0, s1_count_reg};
wire                       pk_full = pk_total >= BEAT_BYTES;
wire                       pk_emit = pk_full || s1_pkt_last_reg;
wire                       pk_tail = s1_pkt_last_reg && pk_total > BEAT_BYTES;
wire [BYTE_LANE_WIDTH+1:0] pk_over = pk_total - BEAT_BYTES;
wire [KEEP_WIDTH-1:0]      pk_keep_fill = keep_below({2'b00, pk_fill});
wire [KEEP_WIDTH-1:0]      pk_keep_total = keep_below(pk_total);
wire [DATA_WIDTH-1:0]      pk_merged = (pk_acc & byte_mask(pk_keep_fill)) |
                                       (pk_rot_data & byte_mask(pk_keep_total & ~pk_keep_fill));
wire [DATA_WIDTH-1:0]      pk_overflow = pk_rot_data & byte_mask(pk_full ? keep_below(pk_over) : {KEEP_WIDTH{1'b0}});

wire pk_accept = s1_valid_reg && !pk_tail_reg && (!pk_emit || m_free);
assign s1_ready = !s1_valid_reg || pk_accept;

always @(posedge clk) begin
    // read stage
    if (d_go) begin
        s1_valid_reg <= 1'b1;
        s1_lo_reg <= d_lo;
        s1_count_reg <= d_count;
        s1_pkt_last_reg <= d_last && slot_pkt_last_mem[drain_ptr_reg];
        s1_err_reg <= slot_err_reg[drain_ptr_reg];
        s1_dest_reg <= slot_dest_mem[drain_ptr_reg];
        if (d_last) begin
            drain_ptr_reg <= drain_ptr_reg + 1'b1;
            drain_fresh_reg <= 1'b1;
        end else begin
            drain_word_reg <= d_word + 1'b1;
            drain_fresh_reg <= 1'b0;
        end
    end else if (pk_accept) begin
        s1_valid_reg <= 1'b0;
    end

    // packer and output register
    if (m_valid_reg && m_rd_rsp_tready)
        m_valid_reg <= 1'b0;

    if (pk_tail_reg) begin
        if (m_free) begin
            m_valid_reg <= 1'b1;
            m_data_reg <= pk_acc;
            m_keep_reg <= pk_keep_fill;
            m_last_reg <= 1'b1;
            m_dest_reg <= pk_dest;
            m_user_reg <= pk_err;
            pk_tail_reg <= 1'b0;
            pk_acc_reg[pk_dest] <= {DATA_WIDTH{1'b0}};
            pk_fill_reg[pk_dest] <= {BYTE_LANE_WIDTH{1'b0}};
            pk_err_reg[pk_dest] <= 1'b0;
        end
    end else if (pk_accept) begin
        if (pk_emit) begin
            m_valid_reg <= 1'b1;
            m_data_reg <= pk_merged;
            m_keep_reg <= pk_full ? {KEEP_WIDTH{1'b1}} : pk_keep_total;
            m_last_reg <= s1_pkt_last_reg && !pk_tail;
            m_dest_reg <= pk_dest;
            m_user_reg <= s1_pkt_last_reg && !pk_tail && (pk_err || s1_err_reg);
            pk_acc_reg[pk_dest] <= pk_overflow;
            pk_fill_reg[pk_dest] <= pk_full ? pk_over[BYTE_LANE_WIDTH-1:0] : {BYTE_LANE_WIDTH{1'b0}};
            pk_tail_reg <= pk_tail;
            pk_tail_dest_reg <= pk_dest;
            pk_err_reg[pk_dest] <= (s1_pkt_last_reg && !pk_tail) ? 1'b0 : (pk_err || s1_err_reg);
        end else begin
            pk_acc_reg[pk_dest] <= pk_merged;
            pk_fill_reg[pk_dest] <= pk_total[BYTE_LANE_WIDTH-1:0];
            pk_err_reg[pk_dest] <= pk_err || s1_err_reg;
        end
    end

    // flush (the client aborts): the packets it left open will never get their last request,
    // so their bytes are dropped; TLPs already sent still drain, and idle rises when they have
    if (flush) begin
        for (g = 0; g < NUM_DESTS; g = g + 1)
            pk_fill_reg[g] <= {BYTE_LANE_WIDTH{1'b0}};
        pk_err_reg <= {NUM_DESTS{1'b0}};
    end

    if (rst) begin
        drain_ptr_reg <= {SLOT_WIDTH{1'b0}};
        drain_fresh_reg <= 1'b1;
        s1_valid_reg <= 1'b0;
        m_valid_reg <= 1'b0;
        for (g = 0; g < NUM_DESTS; g = g + 1)
            pk_fill_reg[g] <= {BYTE_LANE_WIDTH{1'b0}};
        pk_tail_reg <= 1'b0;
        pk_err_reg <= {NUM_DESTS{1'b0}};
    end
end

// =====================================================================
// Slot state
// =====================================================================

reg error_reg;
assign error = error_reg;

always @(posedge clk) begin
    tmo_count_reg <= tmo_tick ? TMO_RELOAD : tmo_count_reg - 1'b1;
    tmo_scan_reg <= tmo_scan_reg + 1'b1;

    for (g = 0; g < NUM_TAGS; g = g + 1)
        if (tmo_tick && slot_state_reg[g] == SLOT_OUTSTANDING && slot_tmo_reg[g] != TMO_LIMIT)
            slot_tmo_reg[g] <= slot_tmo_reg[g] + 1'b1;

    // a retired tag was skipped: try the slot's next generation next cycle
    if (gen_skip)
        slot_gen_reg[alloc_ptr_reg] <= gen_gen;

    if (gen_go) begin
        slot_gen_reg[alloc_ptr_reg] <= gen_gen;
        slot_state_reg[alloc_ptr_reg] <= bus_master_enable ? SLOT_PENDING : SLOT_DONE;
        slot_err_reg[alloc_ptr_reg] <= !bus_master_enable;
        alloc_ptr_reg <= alloc_ptr_reg + 1'b1;
        if (gen_all_retired)
            tag_retired_reg <= tag_retired_reg & ~alloc_tags;
    end

    if (tx_accept) begin
        slot_state_reg[tx_slot_reg] <= SLOT_OUTSTANDING;
        slot_tmo_reg[tx_slot_reg] <= 3'd0;
    end

    if (wr_set_done_reg && slot_state_reg[wr_slot_reg] == SLOT_OUTSTANDING)
        slot_state_reg[wr_slot_reg] <= SLOT_DONE;

    if (c_fail) begin
        slot_state_reg[c_slot] <= SLOT_DONE;
        slot_err_reg[c_slot] <= 1'b1;
        // a poisoned or malformed piece that does not end the request: the host still sends
        // the rest, so keep the tag out of use until the last piece has come
        if (GENS > 1 && cpl_status == CPL_STATUS_SC && !c_final)
            tag_retired_reg[cpl_tag] <= 1'b1;
    end

    if (c_unretire)
        tag_retired_reg[cpl_tag] <= 1'b0;

    if (tmo_fire) begin
        slot_state_reg[tmo_scan_reg] <= SLOT_DONE;
        slot_err_reg[tmo_scan_reg] <= 1'b1;
        // with one generation per slot (256 tags) the tag is reused at once
        if (GENS > 1)
            tag_retired_reg[tmo_tag] <= 1'b1;
    end

    if (d_go && d_last)
        slot_state_reg[drain_ptr_reg] <= SLOT_FREE;

    error_reg <= cpl_err || tmo_fire || (gen_go && gen_bme_err);

    if (rst) begin
        for (g = 0; g < NUM_TAGS; g = g + 1) begin
            slot_state_reg[g] <= SLOT_FREE;
            slot_tmo_reg[g] <= 3'd0;
            slot_gen_reg[g] <= {GEN_WIDTH{1'b0}};
        end
        slot_err_reg <= {NUM_TAGS{1'b0}};
        tag_retired_reg <= 256'd0;
        alloc_ptr_reg <= {SLOT_WIDTH{1'b0}};
        tmo_count_reg <= TMO_RELOAD;
        tmo_scan_reg <= {SLOT_WIDTH{1'b0}};
        error_reg <= 1'b0;
    end
end

// bytes of an open packet wait in an accumulator until its next request comes
reg pk_empty;
always @* begin
    pk_empty = 1'b1;
    for (i = 0; i < NUM_DESTS; i = i + 1)
        if (pk_fill_reg[i] != {BYTE_LANE_WIDTH{1'b0}})
            pk_empty = 1'b0;
end

assign idle = !next_valid_reg && !req_active_reg && !tx_valid_reg &&
              alloc_ptr_reg == drain_ptr_reg && slot_state_reg[drain_ptr_reg] == SLOT_FREE &&
              !s1_valid_reg && !pk_tail_reg && !m_valid_reg && pk_empty;

endmodule

`resetall
