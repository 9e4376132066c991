// SPDX-License-Identifier: Apache-2.0

`resetall
`timescale 1ns / 1ps
`default_nettype none

/*
 * Split-virtqueue engine. Two cooperating state machines:
 *
 * - fetch: on a doorbell, reads the available index, then blocks of ring
 *   entries, then walks each descriptor chain (NEXT, WRITE, INDIRECT) one
 *   descriptor at a time, validating it, and queues the chain's segments and a
 *   chain record (head, readable and writable byte counts). It runs ahead of the
 *   data machine by up to CHAIN_FIFO_DEPTH chains. With EVENT_IDX it writes
 *   avail_event before going idle and then re-reads the index (no lost kicks).
 * - data: starts the back end on the next chain, turns the readable segments
 *   into DMA reads whose bytes stream to the back end and the writable segments
 *   into DMA writes fed by the back end, then writes the used element and the
 *   used index, waits until they are sent, reads used_event (EVENT_IDX) or the
 *   available ring's flags, and requests the queue's interrupt.
 *
 * Malformed chains (loop, next out of range, nested or misplaced INDIRECT,
 * readable after writable, length overflow, too many segments, head out of
 * range, avail index running more than the queue size ahead) and DMA errors
 * stop the engine: no used entry is written for the chain, DEVICE_NEEDS_RESET
 * is requested, the back end is aborted and queued writes are dropped. A device
 * reset aborts everything in flight; a queue reset stops fetching and lets the
 * chains already fetched complete. quiesced is high when nothing is in flight.
 */
module virtio_vq_engine #
(
    // byte-stream width (the TLP data width)
    parameter DATA_WIDTH = 64,
    // byte enables
    parameter KEEP_WIDTH = DATA_WIDTH/8,
    // number of virtqueues
    parameter NUM_QUEUES = 1,
    // queue index width
    parameter QUEUE_INDEX_WIDTH = NUM_QUEUES > 1 ? $clog2(NUM_QUEUES) : 1,
    // segments buffered between the two machines (power of two)
    parameter SEG_FIFO_DEPTH = 256,
    // longest chain accepted, in data-carrying descriptors (<= SEG_FIFO_DEPTH)
    parameter MAX_CHAIN_SEGS = 130,
    // chains buffered between the two machines (power of two)
    parameter CHAIN_FIFO_DEPTH = 4,
    // DMA read destination width
    parameter DEST_WIDTH = 2
)
(
    input  wire                          clk,
    input  wire                          rst,

    /*
     * Transport
     */
    input  wire                          driver_ok,
    input  wire                          bus_master_enable,
    input  wire [63:0]                   driver_features,
    input  wire                          dev_reset,
    input  wire [NUM_QUEUES-1:0]         queue_reset_active,
    input  wire                          notify_valid,
    input  wire [QUEUE_INDEX_WIDTH-1:0]  notify_queue,
    output wire [QUEUE_INDEX_WIDTH-1:0]  q_a_queue,
    input  wire [15:0]                   q_a_size,
    input  wire [63:0]                   q_a_desc,
    input  wire [63:0]                   q_a_driver,
    input  wire [63:0]                   q_a_device,
    input  wire                          q_a_enable,
    output wire [QUEUE_INDEX_WIDTH-1:0]  q_b_queue,
    input  wire [15:0]                   q_b_size,
    input  wire [63:0]                   q_b_driver,
    input  wire [63:0]                   q_b_device,
    output reg                           queue_irq_valid,
    output reg  [QUEUE_INDEX_WIDTH-1:0]  queue_irq_queue,
    output reg                           needs_reset,
    output wire                          quiesced,

    /*
     * DMA read requests and responses
     */
    output wire [63:0]                   m_rd_req_addr,
    output wire [12:0]                   m_rd_req_len,
    output wire [DEST_WIDTH-1:0]         m_rd_req_dest,
    output wire                          m_rd_req_last,
    output wire                          m_rd_req_valid,
    input  wire                          m_rd_req_ready,
    input  wire [DATA_WIDTH-1:0]         s_rd_rsp_tdata,
    input  wire [KEEP_WIDTH-1:0]         s_rd_rsp_tkeep,
    input  wire                          s_rd_rsp_tvalid,
    output wire                          s_rd_rsp_tready,
    input  wire                          s_rd_rsp_tlast,
    input  wire [DEST_WIDTH-1:0]         s_rd_rsp_tdest,
    input  wire                          s_rd_rsp_tuser,
    input  wire                          rd_idle,
    // not used: a failure of one of the engine's reads comes marked in its response packet
    // (s_rd_rsp_tuser); rd_error also pulses for completions that are no longer anyone's
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire                          rd_error,
    /* verilator lint_on UNUSEDSIGNAL */

    /*
     * DMA write requests
     */
    output wire [63:0]                   m_wr_req_addr,
    output wire [12:0]                   m_wr_req_len,
    output wire                          m_wr_req_imm,
    output wire [63:0]                   m_wr_req_imm_data,
    output wire                          m_wr_req_valid,
    input  wire                          m_wr_req_ready,
    input  wire                          wr_done,
    input  wire                          wr_idle,
    output wire                          wr_flush,

    /*
     * Back end: request, and the readable bytes (the write side goes from the
     * back end straight to the DMA write engine)
     */
    output reg                           m_be_req_valid,
    input  wire                          m_be_req_ready,
    output reg  [31:0]                   m_be_req_out_len,
    output reg  [31:0]                   m_be_req_in_len,
    output wire [DATA_WIDTH-1:0]         m_be_out_tdata,
    output wire [KEEP_WIDTH-1:0]         m_be_out_tkeep,
    output wire                          m_be_out_tvalid,
    input  wire                          m_be_out_tready,
    output wire                          m_be_out_tlast,
    output wire                          m_be_out_tuser,
    output wire                          be_abort,
    input  wire                          be_idle
);

`include "virtio_pci_defs.vh"

localparam SEG_PTR_WIDTH = $clog2(SEG_FIFO_DEPTH);
localparam CHAIN_PTR_WIDTH = $clog2(CHAIN_FIFO_DEPTH);
localparam OWNER_FIFO_DEPTH = 32;
localparam OWNER_PTR_WIDTH = 5;

// DMA read destinations
localparam [DEST_WIDTH-1:0] DEST_FETCH = 0;   // available ring and descriptors
localparam [DEST_WIDTH-1:0] DEST_DATA = 1;    // readable buffers, to the back end
localparam [DEST_WIDTH-1:0] DEST_EVENT = 2;   // used_event / avail flags

// descriptor flags (virtio_ring.h)
localparam VRING_DESC_F_NEXT = 0;
localparam VRING_DESC_F_WRITE = 1;
localparam VRING_DESC_F_INDIRECT = 2;
localparam VRING_AVAIL_F_NO_INTERRUPT = 0;

// the largest DMA request
localparam [31:0] DMA_MAX_LEN = 32'd4096;
// ring entries read at once
localparam [15:0] RING_BLOCK = 16'd8;

initial begin
    if (DATA_WIDTH != 64 && DATA_WIDTH != 128 && DATA_WIDTH != 256) begin
        $error("Error: DATA_WIDTH must be 64, 128 or 256 (instance %m)");
        $finish;
    end
    if (MAX_CHAIN_SEGS > SEG_FIFO_DEPTH || (SEG_FIFO_DEPTH & (SEG_FIFO_DEPTH - 1)) != 0) begin
        $error("Error: SEG_FIFO_DEPTH must be a power of two >= MAX_CHAIN_SEGS (instance %m)");
        $finish;
    end
    if ((CHAIN_FIFO_DEPTH & (CHAIN_FIFO_DEPTH - 1)) != 0 || CHAIN_FIFO_DEPTH < 2) begin
        $error("Error: CHAIN_FIFO_DEPTH must be a power of two >= 2 (instance %m)");
        $finish;
    end
end

wire event_idx = driver_features[VIRTIO_RING_F_EVENT_IDX];
wire indirect_ok = driver_features[VIRTIO_RING_F_INDIRECT_DESC];

// ---------------------------------------------------------------- error and abort
reg error_reg;
// abort everything in flight: device reset, or an error waiting for one
wire aborting = dev_reset || error_reg;
wire any_queue_reset = |queue_reset_active;

// ---------------------------------------------------------------- per-queue state
reg [15:0] last_avail_reg [0:NUM_QUEUES-1];   // next available-ring slot to fetch (free running)
reg [15:0] used_idx_reg [0:NUM_QUEUES-1];     // next used-ring slot (free running)
reg [NUM_QUEUES-1:0] pending_reg;             // a doorbell (or a re-check) is owed

// ---------------------------------------------------------------- segment FIFO
reg [63:0] seg_addr_mem [0:SEG_FIFO_DEPTH-1];
reg [31:0] seg_len_mem [0:SEG_FIFO_DEPTH-1];
reg        seg_write_mem [0:SEG_FIFO_DEPTH-1];
reg [SEG_PTR_WIDTH:0] seg_wr_ptr_reg, seg_rd_ptr_reg;
wire seg_full = seg_wr_ptr_reg == {~seg_rd_ptr_reg[SEG_PTR_WIDTH], seg_rd_ptr_reg[SEG_PTR_WIDTH-1:0]};
wire seg_empty = seg_wr_ptr_reg == seg_rd_ptr_reg;

// ---------------------------------------------------------------- chain FIFO
reg [QUEUE_INDEX_WIDTH-1:0] chain_queue_mem [0:CHAIN_FIFO_DEPTH-1];
reg [15:0] chain_head_mem [0:CHAIN_FIFO_DEPTH-1];
reg [31:0] chain_out_mem [0:CHAIN_FIFO_DEPTH-1];
reg [31:0] chain_in_mem [0:CHAIN_FIFO_DEPTH-1];
reg [15:0] chain_segs_mem [0:CHAIN_FIFO_DEPTH-1];
reg [CHAIN_PTR_WIDTH:0] chain_wr_ptr_reg, chain_rd_ptr_reg;
wire chain_full = chain_wr_ptr_reg == {~chain_rd_ptr_reg[CHAIN_PTR_WIDTH], chain_rd_ptr_reg[CHAIN_PTR_WIDTH-1:0]};
wire chain_empty = chain_wr_ptr_reg == chain_rd_ptr_reg;

// ---------------------------------------------------------------- write-done owners
// wr_done pulses come in request order; this FIFO remembers which machine asked
reg owner_mem [0:OWNER_FIFO_DEPTH-1];          // 1 = fetch machine, 0 = data machine
reg [OWNER_PTR_WIDTH:0] owner_wr_ptr_reg, owner_rd_ptr_reg;
wire owner_full = owner_wr_ptr_reg == {~owner_rd_ptr_reg[OWNER_PTR_WIDTH], owner_rd_ptr_reg[OWNER_PTR_WIDTH-1:0]};
wire done_is_fetch = owner_mem[owner_rd_ptr_reg[OWNER_PTR_WIDTH-1:0]];
wire fetch_wr_done = wr_done && done_is_fetch;
wire data_wr_done = wr_done && !done_is_fetch;

// ---------------------------------------------------------------- response demux
// short responses (descriptor, ring block, index, event) are gathered into 128 bits
wire [127:0] rsp_low;
generate
    if (DATA_WIDTH == 64) begin : g_rsp64
        assign rsp_low = {64'd0, s_rd_rsp_tdata};
    end else begin : g_rsp_wide
        assign rsp_low = s_rd_rsp_tdata[127:0];
    end
endgenerate

wire rsp_is_data = s_rd_rsp_tdest == DEST_DATA;
wire rsp_is_fetch = s_rd_rsp_tdest == DEST_FETCH;
// everything that is not data is short and always accepted by its machine (or dropped when aborting)
assign s_rd_rsp_tready = aborting ? 1'b1 : (rsp_is_data ? m_be_out_tready : 1'b1);
assign m_be_out_tdata = s_rd_rsp_tdata;
assign m_be_out_tkeep = s_rd_rsp_tkeep;
assign m_be_out_tvalid = s_rd_rsp_tvalid && rsp_is_data && !aborting;
assign m_be_out_tlast = s_rd_rsp_tlast;
assign m_be_out_tuser = s_rd_rsp_tuser;
wire rsp_beat = s_rd_rsp_tvalid && s_rd_rsp_tready && !aborting;
wire fetch_rsp_beat = rsp_beat && rsp_is_fetch;
wire event_rsp_beat = rsp_beat && s_rd_rsp_tdest == DEST_EVENT;
wire data_rsp_last = rsp_beat && rsp_is_data && s_rd_rsp_tlast;
wire rsp_error = rsp_beat && s_rd_rsp_tlast && s_rd_rsp_tuser;

// ================================================================= fetch machine
localparam [3:0]
    F_IDLE      = 4'd0,   // pick a queue with a pending doorbell
    F_START     = 4'd1,   // latch the queue configuration
    F_RD_IDX    = 4'd2,   // read avail->idx
    F_WAIT_IDX  = 4'd3,
    F_RD_RING   = 4'd4,   // read a block of avail->ring[]
    F_WAIT_RING = 4'd5,
    F_HEAD      = 4'd6,   // start the chain of the next ring entry
    F_RD_DESC   = 4'd7,   // read one descriptor
    F_WAIT_DESC = 4'd8,
    F_PARSE     = 4'd9,   // check it, queue its segment, follow next / indirect
    F_WR_EVENT  = 4'd10,  // write avail_event = next slot
    F_WAIT_EVENT = 4'd11, // wait until it is sent, then re-read the index
    F_STOP      = 4'd12;  // error: wait for a device reset

reg [3:0] f_state_reg;
reg [QUEUE_INDEX_WIDTH-1:0] f_queue_reg;
reg [15:0] f_qsz_reg;
reg [63:0] f_desc_base_reg, f_driver_reg, f_device_reg;
reg [15:0] f_avail_idx_reg;                    // last avail->idx read
reg [15:0] f_last_avail_reg;                   // working copy of last_avail for this queue
reg [127:0] f_acc_reg;                         // gathered response (index, descriptor)
reg [127:0] f_ring_reg;                        // the block of avail->ring[] entries being walked
reg         f_acc_half_reg;                    // 64-bit bus: second half expected
reg [3:0]   f_ring_count_reg, f_ring_pos_reg;
reg [15:0]  f_head_reg;
reg [63:0]  f_table_reg;                       // current descriptor table
reg [31:0]  f_table_size_reg;                  // its number of entries
reg [15:0]  f_idx_reg;                         // descriptor index in it
reg         f_in_indirect_reg;
reg [31:0]  f_count_reg;                       // descriptors visited in the current table
reg [15:0]  f_segs_reg;                        // segments queued for this chain
reg [32:0]  f_out_len_reg, f_in_len_reg;       // 33 bits: overflow detection
reg         f_seen_write_reg;
reg         f_recheck_reg;                     // the index read follows an avail_event write
reg [QUEUE_INDEX_WIDTH-1:0] f_rr_reg;          // round-robin pointer

reg         f_rd_valid;
reg [63:0]  f_rd_addr;
reg [12:0]  f_rd_len;
reg         f_wr_valid;
reg [63:0]  f_wr_addr;
reg [63:0]  f_wr_data;
wire        f_rd_ready, f_wr_ready;

assign q_a_queue = f_queue_reg;

// descriptor fields in the gathered response (struct virtq_desc, little endian)
wire [63:0] desc_addr = f_acc_reg[63:0];
wire [31:0] desc_len = f_acc_reg[95:64];
wire [15:0] desc_flags = f_acc_reg[111:96];
wire [15:0] desc_next = f_acc_reg[127:112];

wire [15:0] f_qmask = f_qsz_reg - 16'd1;
wire [15:0] f_slot = f_last_avail_reg & f_qmask;
wire [15:0] f_outstanding = f_avail_idx_reg - f_last_avail_reg;
wire [15:0] f_to_wrap = f_qsz_reg - f_slot;
wire [15:0] f_block_a = f_outstanding < RING_BLOCK ? f_outstanding : RING_BLOCK;
wire [15:0] f_block = f_block_a < f_to_wrap ? f_block_a : f_to_wrap;

// the next queue with a pending doorbell, round robin
reg [QUEUE_INDEX_WIDTH-1:0] f_pick;
reg f_pick_valid;
integer pq;
reg [31:0] f_candidate;
always @* begin
    f_pick = f_rr_reg;
    f_pick_valid = 1'b0;
    f_candidate = 32'd0;
    for (pq = NUM_QUEUES - 1; pq >= 0; pq = pq - 1) begin
        f_candidate = ({{(32-QUEUE_INDEX_WIDTH){1'b0}}, f_rr_reg} + 32'd1 + pq) % NUM_QUEUES;
        if (pending_reg[f_candidate[QUEUE_INDEX_WIDTH-1:0]]) begin
            f_pick = f_candidate[QUEUE_INDEX_WIDTH-1:0];
            f_pick_valid = 1'b1;
        end
    end
end

// descriptor checks
wire d_indirect = desc_flags[VRING_DESC_F_INDIRECT];
wire d_next = desc_flags[VRING_DESC_F_NEXT];
wire d_write = desc_flags[VRING_DESC_F_WRITE];
wire [32:0] d_out_sum = f_out_len_reg + {1'b0, desc_len};
wire [32:0] d_in_sum = f_in_len_reg + {1'b0, desc_len};
wire d_bad_indirect = d_indirect && (f_in_indirect_reg || !indirect_ok || d_next ||
                                     desc_len == 32'd0 || desc_len[3:0] != 4'd0);
wire d_bad_order = !d_indirect && !d_write && f_seen_write_reg;
wire d_overflow = !d_indirect && (d_write ? d_in_sum[32] : d_out_sum[32]);
wire d_too_many = !d_indirect && desc_len != 32'd0 && f_segs_reg >= MAX_CHAIN_SEGS[15:0];
wire d_bad_next = !d_indirect && d_next &&
                  ({16'd0, desc_next} >= f_table_size_reg || f_count_reg + 32'd1 >= f_table_size_reg);
wire d_error = d_bad_indirect || d_bad_order || d_overflow || d_too_many || d_bad_next;

// the fetch machine's own findings: a bad descriptor, a head out of range, an index too far ahead
wire [15:0] f_head_value = f_ring_reg[f_ring_pos_reg*16 +: 16];
wire f_head_start = f_state_reg == F_HEAD && f_ring_pos_reg != f_ring_count_reg && !chain_full && !any_queue_reset;
wire f_fault = (f_state_reg == F_PARSE && d_error) ||
               (f_head_start && f_head_value >= f_qsz_reg) ||
               (f_state_reg == F_WAIT_IDX && fetch_rsp_beat && rsp_low[15:0] - f_last_avail_reg > f_qsz_reg);

// ================================================================= data machine
localparam [3:0]
    D_IDLE      = 4'd0,   // wait for a fetched chain
    D_START     = 4'd1,   // hand the request to the back end
    D_SEG       = 4'd2,   // take the next segment
    D_ISSUE     = 4'd3,   // issue its DMA requests (4 KiB at most each)
    D_WAIT      = 4'd4,   // wait for the readable bytes to be consumed and the writes to be sent
    D_USED_ELEM = 4'd5,   // used->ring[idx] = {head, in_len}
    D_USED_IDX  = 4'd6,   // used->idx = idx + 1
    D_WAIT_USED = 4'd7,   // both sent
    D_RD_EVENT  = 4'd8,   // read used_event or avail->flags
    D_WAIT_EVENT = 4'd9;  // decide the interrupt

reg [3:0] d_state_reg;
reg [QUEUE_INDEX_WIDTH-1:0] d_queue_reg;
reg [15:0] d_head_reg;
reg [31:0] d_out_len_reg, d_in_len_reg;
reg [15:0] d_segs_left_reg;
reg [63:0] d_seg_addr_reg;
reg [31:0] d_seg_left_reg;
reg        d_seg_write_reg;
reg [31:0] d_rd_issued_reg;                     // readable bytes requested so far
reg [15:0] d_wr_issued_reg, d_wr_done_reg;      // data writes requested / sent
reg        d_out_done_reg;
reg [1:0]  d_used_done_reg;
reg [15:0] d_used_old_reg;

reg         d_rd_valid;
reg [63:0]  d_rd_addr;
reg [12:0]  d_rd_len;
reg [DEST_WIDTH-1:0] d_rd_dest;
reg         d_rd_last;
reg         d_wr_valid;
reg [63:0]  d_wr_addr;
reg [12:0]  d_wr_len;
reg         d_wr_imm;
reg [63:0]  d_wr_data;
wire        d_rd_ready, d_wr_ready;

assign q_b_queue = d_queue_reg;

wire [15:0] d_qmask = q_b_size - 16'd1;
wire [15:0] d_used_idx = used_idx_reg[d_queue_reg];
wire [31:0] d_chunk = d_seg_left_reg < DMA_MAX_LEN ? d_seg_left_reg : DMA_MAX_LEN;

// ================================================================= request arbiters
// a request, once presented, is held until accepted (the grant is locked meanwhile)
reg rd_lock_reg, rd_lock_fetch_reg;
wire rd_sel_fetch = rd_lock_reg ? rd_lock_fetch_reg : f_rd_valid;
assign m_rd_req_valid = !aborting && (rd_sel_fetch ? f_rd_valid : d_rd_valid);
assign m_rd_req_addr = rd_sel_fetch ? f_rd_addr : d_rd_addr;
assign m_rd_req_len = rd_sel_fetch ? f_rd_len : d_rd_len;
assign m_rd_req_dest = rd_sel_fetch ? DEST_FETCH : d_rd_dest;
assign m_rd_req_last = rd_sel_fetch ? 1'b1 : d_rd_last;
assign f_rd_ready = rd_sel_fetch && m_rd_req_ready && !aborting;
assign d_rd_ready = !rd_sel_fetch && m_rd_req_ready && !aborting;

reg wr_lock_reg, wr_lock_fetch_reg;
wire wr_sel_fetch = wr_lock_reg ? wr_lock_fetch_reg : f_wr_valid;
assign m_wr_req_valid = !aborting && !owner_full && (wr_sel_fetch ? f_wr_valid : d_wr_valid);
assign m_wr_req_addr = wr_sel_fetch ? f_wr_addr : d_wr_addr;
assign m_wr_req_len = wr_sel_fetch ? 13'd2 : d_wr_len;
assign m_wr_req_imm = wr_sel_fetch ? 1'b1 : d_wr_imm;
assign m_wr_req_imm_data = wr_sel_fetch ? f_wr_data : d_wr_data;
assign f_wr_ready = wr_sel_fetch && m_wr_req_ready && !aborting && !owner_full;
assign d_wr_ready = !wr_sel_fetch && m_wr_req_ready && !aborting && !owner_full;
wire wr_req_fire = m_wr_req_valid && m_wr_req_ready;

assign wr_flush = aborting;
assign be_abort = aborting;

assign quiesced = f_state_reg != F_START && f_state_reg != F_RD_IDX && f_state_reg != F_WAIT_IDX &&
                  f_state_reg != F_RD_RING && f_state_reg != F_WAIT_RING && f_state_reg != F_HEAD &&
                  f_state_reg != F_RD_DESC && f_state_reg != F_WAIT_DESC && f_state_reg != F_PARSE &&
                  f_state_reg != F_WR_EVENT && f_state_reg != F_WAIT_EVENT &&
                  (d_state_reg == D_IDLE) && (chain_empty || aborting) &&
                  rd_idle && wr_idle && be_idle && !m_be_req_valid;

// ================================================================= fetch machine: outputs
always @* begin
    f_rd_valid = 1'b0;
    f_rd_addr = 64'd0;
    f_rd_len = 13'd0;
    f_wr_valid = 1'b0;
    f_wr_addr = f_device_reg + 64'd4 + {45'd0, f_qsz_reg, 3'b000};  // avail_event
    f_wr_data = {48'd0, f_last_avail_reg};
    case (f_state_reg)
        F_RD_IDX: begin
            f_rd_valid = 1'b1;
            f_rd_addr = f_driver_reg + 64'd2;
            f_rd_len = 13'd2;
        end
        F_RD_RING: begin
            f_rd_valid = 1'b1;
            f_rd_addr = f_driver_reg + 64'd4 + {47'd0, f_slot, 1'b0};
            f_rd_len = {f_block[11:0], 1'b0};   // at most RING_BLOCK entries
        end
        F_RD_DESC: begin
            f_rd_valid = !seg_full;
            f_rd_addr = f_table_reg + {44'd0, f_idx_reg, 4'b0000};
            f_rd_len = 13'd16;
        end
        F_WR_EVENT: begin
            f_wr_valid = 1'b1;
        end
        default: ;
    endcase
end

// ================================================================= data machine: outputs
always @* begin
    d_rd_valid = 1'b0;
    d_rd_addr = d_seg_addr_reg;
    d_rd_len = d_chunk[12:0];
    d_rd_dest = DEST_DATA;
    d_rd_last = d_rd_issued_reg + d_chunk == d_out_len_reg;
    d_wr_valid = 1'b0;
    d_wr_addr = d_seg_addr_reg;
    d_wr_len = d_chunk[12:0];
    d_wr_imm = 1'b0;
    d_wr_data = 64'd0;
    m_be_req_valid = 1'b0;
    case (d_state_reg)
        D_START: m_be_req_valid = !aborting;
        D_ISSUE: begin
            d_rd_valid = !d_seg_write_reg;
            d_wr_valid = d_seg_write_reg;
        end
        D_USED_ELEM: begin
            d_wr_valid = 1'b1;
            d_wr_addr = q_b_device + 64'd4 + {45'd0, d_used_idx & d_qmask, 3'b000};
            d_wr_len = 13'd8;
            d_wr_imm = 1'b1;
            d_wr_data = {d_in_len_reg, 16'd0, d_head_reg};   // struct virtq_used_elem {le32 id; le32 len}
        end
        D_USED_IDX: begin
            d_wr_valid = 1'b1;
            d_wr_addr = q_b_device + 64'd2;
            d_wr_len = 13'd2;
            d_wr_imm = 1'b1;
            d_wr_data = {48'd0, d_used_idx + 16'd1};
        end
        D_RD_EVENT: begin
            d_rd_valid = 1'b1;
            // used_event sits after the ring: avail + 4 + 2 * queue size
            d_rd_addr = event_idx ? q_b_driver + 64'd4 + {47'd0, q_b_size, 1'b0} : q_b_driver;
            d_rd_len = 13'd2;
            d_rd_dest = DEST_EVENT;
            d_rd_last = 1'b1;
        end
        default: ;
    endcase
end

// vring_need_event(used_event, new, old) with old = new - 1
wire [15:0] d_event_value = rsp_low[15:0];
wire [15:0] d_need_a = d_used_idx - d_event_value - 16'd1;
wire [15:0] d_need_b = d_used_idx - d_used_old_reg;
wire d_need_irq = event_idx ? (d_need_a < d_need_b) : !d_event_value[VRING_AVAIL_F_NO_INTERRUPT];

integer i;

always @(posedge clk) begin
    queue_irq_valid <= 1'b0;
    needs_reset <= 1'b0;

    // request-port locks
    rd_lock_reg <= m_rd_req_valid && !m_rd_req_ready;
    if (!rd_lock_reg)
        rd_lock_fetch_reg <= rd_sel_fetch;
    wr_lock_reg <= m_wr_req_valid && !m_wr_req_ready;
    if (!wr_lock_reg)
        wr_lock_fetch_reg <= wr_sel_fetch;

    // owners of outstanding writes
    if (wr_req_fire) begin
        owner_mem[owner_wr_ptr_reg[OWNER_PTR_WIDTH-1:0]] <= wr_sel_fetch;
        owner_wr_ptr_reg <= owner_wr_ptr_reg + 1'b1;
    end
    if (wr_done)
        owner_rd_ptr_reg <= owner_rd_ptr_reg + 1'b1;

    // ---------------------------------------------------------------- fetch machine
    case (f_state_reg)
        F_IDLE: begin
            // a doorbell while bus mastering is off waits for it (the DMA engines would refuse)
            if (driver_ok && bus_master_enable && !aborting && !any_queue_reset && f_pick_valid) begin
                f_queue_reg <= f_pick;
                f_rr_reg <= f_pick;
                pending_reg[f_pick] <= 1'b0;
                f_recheck_reg <= 1'b0;
                f_state_reg <= F_START;
            end
        end
        F_START: begin
            if (!q_a_enable || q_a_size == 16'd0) begin
                f_state_reg <= F_IDLE;
            end else begin
                f_qsz_reg <= q_a_size;
                f_desc_base_reg <= q_a_desc;
                f_driver_reg <= q_a_driver;
                f_device_reg <= q_a_device;
                f_last_avail_reg <= last_avail_reg[f_queue_reg];
                f_state_reg <= F_RD_IDX;
            end
        end
        F_RD_IDX: begin
            if (f_rd_ready) begin
                f_acc_half_reg <= 1'b0;
                f_state_reg <= F_WAIT_IDX;
            end
        end
        F_WAIT_IDX: begin
            if (fetch_rsp_beat) begin
                f_avail_idx_reg <= rsp_low[15:0];
                if (rsp_low[15:0] - f_last_avail_reg > f_qsz_reg) begin
                    // the driver claims more new entries than the ring holds
                    f_state_reg <= F_STOP;
                end else if (rsp_low[15:0] != f_last_avail_reg) begin
                    f_state_reg <= F_RD_RING;
                end else if (event_idx && !f_recheck_reg) begin
                    f_state_reg <= F_WR_EVENT;
                end else begin
                    f_state_reg <= F_IDLE;
                end
            end
        end
        F_RD_RING: begin
            if (any_queue_reset) begin
                // a queue reset waits for the chains already fetched; fetch no more
                f_state_reg <= F_IDLE;
                pending_reg[f_queue_reg] <= 1'b1;
            end else if (f_rd_ready) begin
                f_ring_count_reg <= f_block[3:0];
                f_ring_pos_reg <= 4'd0;
                f_acc_half_reg <= 1'b0;
                f_state_reg <= F_WAIT_RING;
            end
        end
        F_WAIT_RING: begin
            if (fetch_rsp_beat) begin
                if (DATA_WIDTH == 64 && f_acc_half_reg)
                    f_ring_reg[127:64] <= rsp_low[63:0];
                else
                    f_ring_reg <= rsp_low;
                f_acc_half_reg <= 1'b1;
                if (s_rd_rsp_tlast)
                    f_state_reg <= F_HEAD;
            end
        end
        F_HEAD: begin
            if (f_ring_pos_reg == f_ring_count_reg) begin
                f_state_reg <= f_last_avail_reg == f_avail_idx_reg ? F_RD_IDX : F_RD_RING;
                f_recheck_reg <= 1'b0;
            end else if (f_head_start) begin
                f_head_reg <= f_head_value;
                f_idx_reg <= f_head_value;
                f_table_reg <= f_desc_base_reg;
                f_table_size_reg <= {16'd0, f_qsz_reg};
                f_in_indirect_reg <= 1'b0;
                f_count_reg <= 32'd0;
                f_segs_reg <= 16'd0;
                f_out_len_reg <= 33'd0;
                f_in_len_reg <= 33'd0;
                f_seen_write_reg <= 1'b0;
                if (f_head_value >= f_qsz_reg) begin
                    f_state_reg <= F_STOP;
                end else begin
                    f_state_reg <= F_RD_DESC;
                end
            end else if (any_queue_reset) begin
                f_state_reg <= F_IDLE;
                pending_reg[f_queue_reg] <= 1'b1;
            end
        end
        F_RD_DESC: begin
            if (f_rd_ready) begin
                f_acc_half_reg <= 1'b0;
                f_state_reg <= F_WAIT_DESC;
            end
        end
        F_WAIT_DESC: begin
            if (fetch_rsp_beat) begin
                if (DATA_WIDTH == 64 && f_acc_half_reg)
                    f_acc_reg[127:64] <= rsp_low[63:0];
                else
                    f_acc_reg <= rsp_low;
                f_acc_half_reg <= 1'b1;
                if (s_rd_rsp_tlast)
                    f_state_reg <= F_PARSE;
            end
        end
        F_PARSE: begin
            if (d_error) begin
                f_state_reg <= F_STOP;
            end else if (d_indirect) begin
                // the rest of the chain is the indirect table, from its entry 0
                f_table_reg <= desc_addr;
                f_table_size_reg <= {4'd0, desc_len[31:4]};
                f_idx_reg <= 16'd0;
                f_in_indirect_reg <= 1'b1;
                f_count_reg <= 32'd0;
                f_state_reg <= F_RD_DESC;
            end else begin
                if (desc_len != 32'd0) begin
                    seg_addr_mem[seg_wr_ptr_reg[SEG_PTR_WIDTH-1:0]] <= desc_addr;
                    seg_len_mem[seg_wr_ptr_reg[SEG_PTR_WIDTH-1:0]] <= desc_len;
                    seg_write_mem[seg_wr_ptr_reg[SEG_PTR_WIDTH-1:0]] <= d_write;
                    seg_wr_ptr_reg <= seg_wr_ptr_reg + 1'b1;
                    f_segs_reg <= f_segs_reg + 16'd1;
                end
                if (d_write) begin
                    f_in_len_reg <= d_in_sum;
                    f_seen_write_reg <= 1'b1;
                end else begin
                    f_out_len_reg <= d_out_sum;
                end
                f_count_reg <= f_count_reg + 32'd1;
                if (d_next) begin
                    f_idx_reg <= desc_next;
                    f_state_reg <= F_RD_DESC;
                end else begin
                    // chain complete
                    chain_queue_mem[chain_wr_ptr_reg[CHAIN_PTR_WIDTH-1:0]] <= f_queue_reg;
                    chain_head_mem[chain_wr_ptr_reg[CHAIN_PTR_WIDTH-1:0]] <= f_head_reg;
                    chain_out_mem[chain_wr_ptr_reg[CHAIN_PTR_WIDTH-1:0]] <= d_write ? f_out_len_reg[31:0] : d_out_sum[31:0];
                    chain_in_mem[chain_wr_ptr_reg[CHAIN_PTR_WIDTH-1:0]] <= d_write ? d_in_sum[31:0] : f_in_len_reg[31:0];
                    chain_segs_mem[chain_wr_ptr_reg[CHAIN_PTR_WIDTH-1:0]] <= f_segs_reg + (desc_len != 32'd0 ? 16'd1 : 16'd0);
                    chain_wr_ptr_reg <= chain_wr_ptr_reg + 1'b1;
                    f_last_avail_reg <= f_last_avail_reg + 16'd1;
                    last_avail_reg[f_queue_reg] <= f_last_avail_reg + 16'd1;
                    f_ring_pos_reg <= f_ring_pos_reg + 4'd1;
                    f_state_reg <= F_HEAD;
                end
            end
        end
        F_WR_EVENT: begin
            if (f_wr_ready)
                f_state_reg <= F_WAIT_EVENT;
        end
        F_WAIT_EVENT: begin
            if (fetch_wr_done) begin
                // a buffer made available before the driver saw avail_event gets no kick: look again
                f_recheck_reg <= 1'b1;
                f_state_reg <= F_RD_IDX;
            end
        end
        F_STOP: ;
        default: f_state_reg <= F_IDLE;
    endcase

    // ---------------------------------------------------------------- data machine
    case (d_state_reg)
        D_IDLE: begin
            if (!chain_empty && !aborting) begin
                d_queue_reg <= chain_queue_mem[chain_rd_ptr_reg[CHAIN_PTR_WIDTH-1:0]];
                d_head_reg <= chain_head_mem[chain_rd_ptr_reg[CHAIN_PTR_WIDTH-1:0]];
                d_out_len_reg <= chain_out_mem[chain_rd_ptr_reg[CHAIN_PTR_WIDTH-1:0]];
                d_in_len_reg <= chain_in_mem[chain_rd_ptr_reg[CHAIN_PTR_WIDTH-1:0]];
                d_segs_left_reg <= chain_segs_mem[chain_rd_ptr_reg[CHAIN_PTR_WIDTH-1:0]];
                m_be_req_out_len <= chain_out_mem[chain_rd_ptr_reg[CHAIN_PTR_WIDTH-1:0]];
                m_be_req_in_len <= chain_in_mem[chain_rd_ptr_reg[CHAIN_PTR_WIDTH-1:0]];
                d_out_done_reg <= chain_out_mem[chain_rd_ptr_reg[CHAIN_PTR_WIDTH-1:0]] == 32'd0;
                chain_rd_ptr_reg <= chain_rd_ptr_reg + 1'b1;
                d_rd_issued_reg <= 32'd0;
                d_wr_issued_reg <= 16'd0;
                d_wr_done_reg <= 16'd0;
                d_state_reg <= D_START;
            end
        end
        D_START: begin
            if (m_be_req_ready)
                d_state_reg <= D_SEG;
        end
        D_SEG: begin
            if (d_segs_left_reg == 16'd0) begin
                d_state_reg <= D_WAIT;
            end else if (!seg_empty) begin
                d_seg_addr_reg <= seg_addr_mem[seg_rd_ptr_reg[SEG_PTR_WIDTH-1:0]];
                d_seg_left_reg <= seg_len_mem[seg_rd_ptr_reg[SEG_PTR_WIDTH-1:0]];
                d_seg_write_reg <= seg_write_mem[seg_rd_ptr_reg[SEG_PTR_WIDTH-1:0]];
                seg_rd_ptr_reg <= seg_rd_ptr_reg + 1'b1;
                d_segs_left_reg <= d_segs_left_reg - 16'd1;
                d_state_reg <= D_ISSUE;
            end
        end
        D_ISSUE: begin
            if ((d_seg_write_reg && d_wr_ready) || (!d_seg_write_reg && d_rd_ready)) begin
                d_seg_addr_reg <= d_seg_addr_reg + {32'd0, d_chunk};
                d_seg_left_reg <= d_seg_left_reg - d_chunk;
                if (d_seg_write_reg)
                    d_wr_issued_reg <= d_wr_issued_reg + 16'd1;
                else
                    d_rd_issued_reg <= d_rd_issued_reg + d_chunk;
                if (d_seg_left_reg == d_chunk)
                    d_state_reg <= D_SEG;
            end
        end
        D_WAIT: begin
            if (d_out_done_reg && d_wr_done_reg == d_wr_issued_reg)
                d_state_reg <= D_USED_ELEM;
        end
        D_USED_ELEM: begin
            if (d_wr_ready) begin
                d_used_done_reg <= 2'd0;
                d_state_reg <= D_USED_IDX;
            end
        end
        D_USED_IDX: begin
            if (d_wr_ready) begin
                d_used_old_reg <= d_used_idx;
                used_idx_reg[d_queue_reg] <= d_used_idx + 16'd1;
                d_state_reg <= D_WAIT_USED;
            end
        end
        D_WAIT_USED: begin
            if (d_used_done_reg == 2'd2 || (d_used_done_reg == 2'd1 && data_wr_done))
                d_state_reg <= D_RD_EVENT;
        end
        D_RD_EVENT: begin
            if (d_rd_ready)
                d_state_reg <= D_WAIT_EVENT;
        end
        D_WAIT_EVENT: begin
            if (event_rsp_beat) begin
                if (d_need_irq) begin
                    queue_irq_valid <= 1'b1;
                    queue_irq_queue <= d_queue_reg;
                end
                d_state_reg <= D_IDLE;
            end
        end
        default: d_state_reg <= D_IDLE;
    endcase

    // write completions of the data machine: data writes, then the two used-ring writes
    if (data_wr_done) begin
        if (d_state_reg == D_USED_IDX || d_state_reg == D_WAIT_USED)
            d_used_done_reg <= d_used_done_reg + 2'd1;
        else
            d_wr_done_reg <= d_wr_done_reg + 16'd1;
    end
    if (data_rsp_last)
        d_out_done_reg <= 1'b1;

    // ---------------------------------------------------------------- errors
    // a malformed chain or a failed DMA: stop, and ask the transport for DEVICE_NEEDS_RESET once.
    // A DMA read of the engine that fails (UR, CA, poisoned, timeout, bus mastering off) ends
    // its response packet with tuser (rsp_error). rd_error is not used: it also pulses for a
    // completion that is no longer expected, e.g. the late answer to a read that timed out
    // before a device reset, which must not stop a device that is working again.
    if ((f_fault || rsp_error) && !dev_reset && !error_reg) begin
        error_reg <= 1'b1;
        needs_reset <= 1'b1;
    end
    if (error_reg)
        f_state_reg <= F_STOP;

    // doorbells for enabled queues (the transport filters the rest); after the machine so
    // that a doorbell in the cycle the queue is picked is not lost
    if (notify_valid)
        pending_reg[notify_queue] <= 1'b1;
    if (aborting) begin
        // drop everything queued between the machines; the data machine stops where it is
        d_state_reg <= D_IDLE;
        seg_rd_ptr_reg <= seg_wr_ptr_reg;
        chain_rd_ptr_reg <= chain_wr_ptr_reg;
    end

    // ---------------------------------------------------------------- resets
    if (dev_reset) begin
        f_state_reg <= F_IDLE;
        error_reg <= 1'b0;
        pending_reg <= {NUM_QUEUES{1'b0}};
        if (quiesced) begin
            // the transport completes the reset this cycle: the rings start again at 0
            for (i = 0; i < NUM_QUEUES; i = i + 1) begin
                last_avail_reg[i] <= 16'd0;
                used_idx_reg[i] <= 16'd0;
            end
            owner_rd_ptr_reg <= owner_wr_ptr_reg;
        end
    end
    for (i = 0; i < NUM_QUEUES; i = i + 1) begin
        if (queue_reset_active[i] && quiesced) begin
            last_avail_reg[i] <= 16'd0;
            used_idx_reg[i] <= 16'd0;
            pending_reg[i] <= 1'b0;
        end
    end

    if (rst) begin
        f_state_reg <= F_IDLE;
        d_state_reg <= D_IDLE;
        error_reg <= 1'b0;
        pending_reg <= {NUM_QUEUES{1'b0}};
        seg_wr_ptr_reg <= {(SEG_PTR_WIDTH+1){1'b0}};
        seg_rd_ptr_reg <= {(SEG_PTR_WIDTH+1){1'b0}};
        chain_wr_ptr_reg <= {(CHAIN_PTR_WIDTH+1){1'b0}};
        chain_rd_ptr_reg <= {(CHAIN_PTR_WIDTH+1){1'b0}};
        owner_wr_ptr_reg <= {(OWNER_PTR_WIDTH+1){1'b0}};
        owner_rd_ptr_reg <= {(OWNER_PTR_WIDTH+1){1'b0}};
        rd_lock_reg <= 1'b0;
        wr_lock_reg <= 1'b0;
        queue_irq_valid <= 1'b0;
        needs_reset <= 1'b0;
        f_rr_reg <= {QUEUE_INDEX_WIDTH{1'b0}};
        for (i = 0; i < NUM_QUEUES; i = i + 1) begin
            last_avail_reg[i] <= 16'd0;
            used_idx_reg[i] <= 16'd0;
        end
    end
end

endmodule

`resetall
