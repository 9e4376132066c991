// SPDX-License-Identifier: Apache-2.0

`resetall
`timescale 1ns / 1ps
`default_nettype none

/*
 * Split-virtqueue engine, pipelined so that several chains are fetched and
 * moved at once and no host round trip sits on the data path.
 *
 * Fetch (in order, several chains in flight):
 * - ring stage: on a doorbell, reads avail->idx, then the new ring entries in
 *   blocks of RING_BLOCK into the head FIFO; while new entries keep appearing
 *   it reads the index again at once (in parallel with the ring block), so a
 *   busy queue costs one round trip per batch, not two per chain. With
 *   EVENT_IDX it writes avail_event before leaving the queue and reads the
 *   index once more (no lost kicks). A doorbell that carries the driver's avail
 *   idx (VIRTIO_F_NOTIFICATION_DATA) and announces new entries, no more than
 *   the queue size ahead, stands in for the first index read: the round starts
 *   with the ring entries (an old, repeated or bogus value is ignored and the
 *   index read as without it).
 * - contexts: each head gets one of NUM_CTX contexts (in order) and a read of
 *   HEAD_DESCS descriptors from the head on; when the head is a well-formed
 *   INDIRECT descriptor the whole table (up to CTX_DESCS entries) is read as
 *   soon as the head arrives. All context reads overlap.
 * - walker: walks the oldest context's chain from its buffer (one descriptor
 *   every two cycles), refilling it with another read when `next` leaves the
 *   buffer, validates every descriptor, and commits the chain (its readable
 *   and writable segments, a chain record) only when it is complete.
 * Data (in order, each stage runs ahead of the next):
 * - the back-end request of each chain;
 * - the read issuer: DMA reads of the readable segments, chain after chain
 *   (the bytes stream to the back end in request order);
 * - the write issuer: DMA write requests for the writable segments (the back
 *   end's bytes fill them in order);
 * - the completer: when a chain's bytes are consumed and its writes sent, the
 *   used element; the used index once for every run of completed chains.
 * Interrupts: after a used-index write has been sent, the interrupt machine
 *   reads used_event (EVENT_IDX) or the available ring's flags and decides with
 *   vring_need_event(used_event, new, old) over everything published since the
 *   previous decision read, then requests the queue's interrupt; up to four
 *   decision reads are in flight.
 * DMA read responses come back in request order (virtio_dma_rd), so the
 * fetch stages keep a FIFO of what each of their reads was.
 *
 * Malformed chains (loop, next out of range, nested or misplaced INDIRECT,
 * readable after writable, length overflow, too many segments, head out of
 * range, avail index running more than the queue size ahead) and DMA errors
 * stop the engine when the walker reaches them (earlier chains complete
 * normally): no used entry is written for the chain, DEVICE_NEEDS_RESET is
 * requested, the back end is aborted and queued writes are dropped. A device
 * reset aborts everything in flight; a queue reset stops fetching, drops what
 * was fetched but not walked (fetched again later) and lets the walked chains
 * complete. quiesced is high when nothing is in flight.
 *
 * Index state (a test back door may preload it while the queue is idle):
 * last_avail_reg[q] (next available slot the walker takes), used_idx_reg[q]
 * (next used slot), used_published_reg[q] / used_checked_reg[q] (used index
 * last sent / covered by the interrupt decision reads issued).
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
    // segments buffered per direction between walker and issuers (power of two)
    parameter SEG_FIFO_DEPTH = 256,
    // longest chain accepted, in data-carrying descriptors (<= SEG_FIFO_DEPTH)
    parameter MAX_CHAIN_SEGS = 130,
    // chains walked and not yet completed (power of two)
    parameter CHAIN_FIFO_DEPTH = 16,
    // chains being fetched at once (power of two)
    parameter NUM_CTX = 16,
    // beats of readable bytes buffered for the back end (power of two)
    parameter DATA_FIFO_DEPTH = 64,
    // DMA read destination width
    parameter DEST_WIDTH = 2,
    // bytes of buffer data (readable segments) requested and not yet received: keep it below
    // what the DMA read tags hold (DMA_TAGS x 512) by a request (4 KiB) so that ring and
    // descriptor reads always find a tag and never drain behind more data than this
    parameter DATA_INFLIGHT_BYTES = 12288
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
    input  wire                          notify_data,  // the doorbell carries the driver's avail idx
    input  wire [15:0]                   notify_idx,
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
     * DMA write requests for the buffers' writable bytes (the data stream
     * comes from the back end)
     */
    output wire [63:0]                   m_wr_req_addr,
    output wire [12:0]                   m_wr_req_len,
    output wire                          m_wr_req_valid,
    input  wire                          m_wr_req_ready,
    input  wire                          wr_done,
    input  wire                          wr_idle,
    output wire                          wr_flush,

    /*
     * Immediate writes of the used ring (elements, index, avail_event): a
     * path of their own, so that they never wait behind data writes that
     * wait for the back end's bytes
     */
    output wire [63:0]                   m_iwr_req_addr,
    output wire [3:0]                    m_iwr_req_len,
    output wire [63:0]                   m_iwr_req_data,
    output wire                          m_iwr_req_valid,
    input  wire                          m_iwr_req_ready,
    input  wire                          iwr_done,
    input  wire                          iwr_idle,

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
localparam DFIFO_PTR_WIDTH = $clog2(DATA_FIFO_DEPTH);
localparam CTX_WIDTH = NUM_CTX > 1 ? $clog2(NUM_CTX) : 1;
// descriptors buffered per context, and read at a chain's head
localparam [4:0] CTX_DESCS = 5'd16;
localparam CTX_POS_WIDTH = 4;
localparam [4:0] HEAD_DESCS = 5'd4;
// ring entries read at once, and the head FIFO behind them
localparam [15:0] RING_BLOCK = 16'd16;
localparam HEAD_FIFO_DEPTH = 32;
localparam HEAD_PTR_WIDTH = 5;
// fetch reads outstanding (what each one is)
localparam EXP_DEPTH = 32;
localparam EXP_PTR_WIDTH = 5;
// writes outstanding (who asked), used-index writes outstanding
localparam OWNER_FIFO_DEPTH = 32;
localparam OWNER_PTR_WIDTH = 5;
// descriptor buffer banks: one descriptor (128 bits) per bank and cycle
localparam BANKS = DATA_WIDTH >= 256 ? 2 : 1;
localparam BANK_DEPTH = NUM_CTX * CTX_DESCS / BANKS;
localparam BANK_ADDR_WIDTH = $clog2(BANK_DEPTH);
// available-ring entries per response beat
localparam RING_PER_BEAT_I = DATA_WIDTH / 16;
localparam [4:0] RING_PER_BEAT = RING_PER_BEAT_I[4:0];

// DMA read destinations
localparam [DEST_WIDTH-1:0] DEST_FETCH = 0;   // available ring and descriptors
localparam [DEST_WIDTH-1:0] DEST_DATA = 1;    // readable buffers, to the back end
localparam [DEST_WIDTH-1:0] DEST_EVENT = 2;   // used_event / avail flags

// what a fetch read was
localparam [1:0] EXP_IDX = 2'd0, EXP_RING = 2'd1, EXP_DESC = 2'd2;

// who a write belongs to
localparam [1:0] OWN_ELEM = 2'd1, OWN_IDX = 2'd2, OWN_FETCH = 2'd3;

// descriptor flags (virtio_ring.h)
localparam VRING_DESC_F_NEXT = 0;
localparam VRING_DESC_F_WRITE = 1;
localparam VRING_DESC_F_INDIRECT = 2;
localparam VRING_AVAIL_F_NO_INTERRUPT = 0;

// the largest DMA request
localparam [31:0] DMA_MAX_LEN = 32'd4096;
// used elements written before the index at most
localparam [7:0] USED_BATCH = 8'd16;

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
    if ((NUM_CTX & (NUM_CTX - 1)) != 0 || NUM_CTX < 2) begin
        $error("Error: NUM_CTX must be a power of two >= 2 (instance %m)");
        $finish;
    end
end

wire event_idx = driver_features[VIRTIO_RING_F_EVENT_IDX];
// doorbells carry the driver's avail idx: the ring stage does not poll the index, it takes the
// doorbells (with EVENT_IDX it asks for one per batch through avail_event)
wire ndata_mode = driver_features[VIRTIO_F_NOTIFICATION_DATA];
wire indirect_ok = driver_features[VIRTIO_RING_F_INDIRECT_DESC];

// ---------------------------------------------------------------- error and abort
reg error_reg;
// abort everything in flight: device reset, or an error waiting for one
wire aborting = dev_reset || error_reg;
wire any_queue_reset = |queue_reset_active;

integer i;

// ---------------------------------------------------------------- per-queue state
reg [15:0] last_avail_reg [0:NUM_QUEUES-1];     // next available slot the walker takes (free running)
reg [15:0] inflight_reg [0:NUM_QUEUES-1];       // slots read from the ring and not yet walked
reg [15:0] used_idx_reg [0:NUM_QUEUES-1];       // next used slot (free running)
reg [15:0] used_published_reg [0:NUM_QUEUES-1]; // used index last sent to the host
reg [15:0] used_checked_reg [0:NUM_QUEUES-1];   // used index covered by the decisions issued
reg [63:0] event_addr_reg [0:NUM_QUEUES-1];     // used_event or avail->flags
reg [63:0] qdesc_reg [0:NUM_QUEUES-1];          // descriptor table (latched by the ring stage)
reg [15:0] qsize_reg [0:NUM_QUEUES-1];
reg [NUM_QUEUES-1:0] pending_reg;               // a doorbell (or a re-check) is owed
reg [15:0] ndata_idx_reg [0:NUM_QUEUES-1];      // avail idx of the last doorbell (NOTIFICATION_DATA)
reg [NUM_QUEUES-1:0] ndata_valid_reg;           // it came with the latest doorbell, not yet used

// ================================================================= read request sources
// Each source holds its request in registers until the port takes it.
// fetch sources: ring stage (index, ring block), context allocation, indirect table of a head,
// walker refill; then the interrupt machine's event read and the read issuer's data reads.
reg         r_rq_valid;  reg [63:0] r_rq_addr;  reg [12:0] r_rq_len;  reg [1:0] r_rq_kind;  reg [4:0] r_rq_n;
reg         a_rq_valid;  reg [63:0] a_rq_addr;  reg [12:0] a_rq_len;  reg [CTX_WIDTH-1:0] a_rq_ctx;
reg         p_rq_valid;  reg [63:0] p_rq_addr;  reg [12:0] p_rq_len;  reg [CTX_WIDTH-1:0] p_rq_ctx;
reg         w_rq_valid;  reg [63:0] w_rq_addr;  reg [12:0] w_rq_len;  reg [CTX_WIDTH-1:0] w_rq_ctx;
reg         i_rq_valid;  reg [63:0] i_rq_addr;
reg         d_rq_valid;  reg [63:0] d_rq_addr;  reg [12:0] d_rq_len;  reg d_rq_last;

// ---------------------------------------------------------------- expect FIFO (fetch reads in flight)
reg [1:0]           exp_kind_mem [0:EXP_DEPTH-1];
reg [CTX_WIDTH-1:0] exp_ctx_mem [0:EXP_DEPTH-1];
reg [4:0]           exp_n_mem [0:EXP_DEPTH-1];
reg [EXP_PTR_WIDTH:0] exp_wr_ptr_reg, exp_rd_ptr_reg;
wire exp_full = exp_wr_ptr_reg == {~exp_rd_ptr_reg[EXP_PTR_WIDTH], exp_rd_ptr_reg[EXP_PTR_WIDTH-1:0]};
wire exp_empty = exp_wr_ptr_reg == exp_rd_ptr_reg;
wire [1:0]           exp_kind = exp_kind_mem[exp_rd_ptr_reg[EXP_PTR_WIDTH-1:0]];
wire [CTX_WIDTH-1:0] exp_ctx = exp_ctx_mem[exp_rd_ptr_reg[EXP_PTR_WIDTH-1:0]];
wire [4:0]           exp_n = exp_n_mem[exp_rd_ptr_reg[EXP_PTR_WIDTH-1:0]];

// ---------------------------------------------------------------- read port arbiter
// priority: table of a head, walker refill, allocation, ring stage, event read, data;
// a request, once presented, is held until accepted (the grant is locked meanwhile)
localparam [2:0] SRC_P = 3'd0, SRC_W = 3'd1, SRC_A = 3'd2, SRC_R = 3'd3, SRC_I = 3'd4, SRC_D = 3'd5, SRC_NONE = 3'd7;
reg rd_lock_reg;
reg [2:0] rd_lock_src_reg;
reg [2:0] rd_pick;
always @* begin
    if (p_rq_valid && !exp_full)      rd_pick = SRC_P;
    else if (w_rq_valid && !exp_full) rd_pick = SRC_W;
    else if (a_rq_valid && !exp_full) rd_pick = SRC_A;
    else if (r_rq_valid && !exp_full) rd_pick = SRC_R;
    else if (i_rq_valid)              rd_pick = SRC_I;
    else if (d_rq_valid)              rd_pick = SRC_D;
    else                              rd_pick = SRC_NONE;
end
wire [2:0] rd_sel = rd_lock_reg ? rd_lock_src_reg : rd_pick;
reg        rd_sel_valid;
reg [63:0] rd_sel_addr;
reg [12:0] rd_sel_len;
reg [DEST_WIDTH-1:0] rd_sel_dest;
reg        rd_sel_last;
always @* begin
    rd_sel_valid = 1'b0;
    rd_sel_addr = d_rq_addr;
    rd_sel_len = d_rq_len;
    rd_sel_dest = DEST_FETCH;
    rd_sel_last = 1'b1;
    case (rd_sel)
        SRC_P: begin rd_sel_valid = p_rq_valid; rd_sel_addr = p_rq_addr; rd_sel_len = p_rq_len; end
        SRC_W: begin rd_sel_valid = w_rq_valid; rd_sel_addr = w_rq_addr; rd_sel_len = w_rq_len; end
        SRC_A: begin rd_sel_valid = a_rq_valid; rd_sel_addr = a_rq_addr; rd_sel_len = a_rq_len; end
        SRC_R: begin rd_sel_valid = r_rq_valid; rd_sel_addr = r_rq_addr; rd_sel_len = r_rq_len; end
        SRC_I: begin rd_sel_valid = i_rq_valid; rd_sel_addr = i_rq_addr; rd_sel_len = 13'd2; rd_sel_dest = DEST_EVENT; end
        SRC_D: begin rd_sel_valid = d_rq_valid; rd_sel_dest = DEST_DATA; rd_sel_last = d_rq_last; end
        default: ;
    endcase
end
assign m_rd_req_valid = rd_sel_valid && !aborting;
assign m_rd_req_addr = rd_sel_addr;
assign m_rd_req_len = rd_sel_len;
assign m_rd_req_dest = rd_sel_dest;
assign m_rd_req_last = rd_sel_last;
wire rd_fire = m_rd_req_valid && m_rd_req_ready;
wire rd_fire_fetch = rd_fire && rd_sel <= SRC_R;

// ---------------------------------------------------------------- write ports
// data port: the write issuer alone. Immediate port: completer (used ring) before ring stage
// (avail_event). A used element goes out on the immediate port only after its chain's data
// writes have left the data port (the completer waits for their wr_done), and both ports
// feed one ordered tx_req stream, so the element still follows its chain's data.
localparam [1:0] WSRC_C = 2'd0, WSRC_R = 2'd2, WSRC_NONE = 2'd3;
reg         c_wq_valid;  reg [63:0] c_wq_addr;  reg [3:0] c_wq_len;  reg [63:0] c_wq_data;  reg c_wq_idx;
// the queue of a used index write, latched with it: the completer may take the next chain (of
// another queue) while the write waits for the port
reg [QUEUE_INDEX_WIDTH-1:0] c_wq_queue;
reg         d_wq_valid;  reg [63:0] d_wq_addr;  reg [12:0] d_wq_len;
reg         r_wq_valid;  reg [63:0] r_wq_addr;  reg [15:0] r_wq_data;

reg [1:0]   owner_mem [0:OWNER_FIFO_DEPTH-1];
reg [OWNER_PTR_WIDTH:0] owner_wr_ptr_reg, owner_rd_ptr_reg;
wire owner_full = owner_wr_ptr_reg == {~owner_rd_ptr_reg[OWNER_PTR_WIDTH], owner_rd_ptr_reg[OWNER_PTR_WIDTH-1:0]};
wire [1:0] done_owner = owner_mem[owner_rd_ptr_reg[OWNER_PTR_WIDTH-1:0]];

reg wr_lock_reg;
reg [1:0] wr_lock_src_reg;
wire [1:0] wr_pick = c_wq_valid ? WSRC_C : r_wq_valid ? WSRC_R : WSRC_NONE;
wire [1:0] wr_sel = wr_lock_reg ? wr_lock_src_reg : wr_pick;
reg        wr_sel_valid;
reg [63:0] wr_sel_addr;
reg [3:0]  wr_sel_len;
reg [63:0] wr_sel_data;
always @* begin
    wr_sel_valid = 1'b0;
    wr_sel_addr = c_wq_addr;
    wr_sel_len = c_wq_len;
    wr_sel_data = c_wq_data;
    case (wr_sel)
        WSRC_C: wr_sel_valid = c_wq_valid;
        WSRC_R: begin wr_sel_valid = r_wq_valid; wr_sel_addr = r_wq_addr; wr_sel_len = 4'd2;
                      wr_sel_data = {48'd0, r_wq_data}; end
        default: ;
    endcase
end
assign m_iwr_req_valid = wr_sel_valid && !aborting && !owner_full;
assign m_iwr_req_addr = wr_sel_addr;
assign m_iwr_req_len = wr_sel_len;
assign m_iwr_req_data = wr_sel_data;
wire wr_fire = m_iwr_req_valid && m_iwr_req_ready;
wire [1:0] wr_fire_owner = wr_sel == WSRC_R ? OWN_FETCH : c_wq_idx ? OWN_IDX : OWN_ELEM;

assign m_wr_req_valid = d_wq_valid && !aborting;
assign m_wr_req_addr = d_wq_addr;
assign m_wr_req_len = d_wq_len;
wire d_wr_fire = m_wr_req_valid && m_wr_req_ready;

wire fetch_wr_done = iwr_done && done_owner == OWN_FETCH;
wire data_wr_done = wr_done;
wire idx_wr_done = iwr_done && done_owner == OWN_IDX;

assign wr_flush = aborting;
assign be_abort = aborting;

// used-index writes in flight: queue and value, published when sent
reg [QUEUE_INDEX_WIDTH-1:0] uidx_q_mem [0:OWNER_FIFO_DEPTH-1];
reg [15:0]                  uidx_v_mem [0:OWNER_FIFO_DEPTH-1];
reg [OWNER_PTR_WIDTH:0] uidx_wr_ptr_reg, uidx_rd_ptr_reg;
wire [QUEUE_INDEX_WIDTH-1:0] uidx_q = uidx_q_mem[uidx_rd_ptr_reg[OWNER_PTR_WIDTH-1:0]];
wire [15:0]                  uidx_v = uidx_v_mem[uidx_rd_ptr_reg[OWNER_PTR_WIDTH-1:0]];

// ---------------------------------------------------------------- response demux
wire rsp_is_data = s_rd_rsp_tdest == DEST_DATA;
wire rsp_is_fetch = s_rd_rsp_tdest == DEST_FETCH;
reg fetch_rsp_stall;                               // the fetch side cannot take this beat yet
// readable bytes for the back end go through a FIFO, so that a packet the back end is not
// ready for yet (the next chain's header while it still moves the current chain's data) does
// not hold up the fetch responses behind it in virtio_dma_rd's in-order drain
reg [DATA_WIDTH-1:0] dfifo_data_mem [0:DATA_FIFO_DEPTH-1];
reg [KEEP_WIDTH-1:0] dfifo_keep_mem [0:DATA_FIFO_DEPTH-1];
reg                  dfifo_last_mem [0:DATA_FIFO_DEPTH-1];
reg                  dfifo_user_mem [0:DATA_FIFO_DEPTH-1];
reg [DFIFO_PTR_WIDTH:0] dfifo_wr_ptr_reg, dfifo_rd_ptr_reg;
wire dfifo_full = dfifo_wr_ptr_reg == {~dfifo_rd_ptr_reg[DFIFO_PTR_WIDTH], dfifo_rd_ptr_reg[DFIFO_PTR_WIDTH-1:0]};
wire dfifo_empty = dfifo_wr_ptr_reg == dfifo_rd_ptr_reg;
assign s_rd_rsp_tready = aborting ? 1'b1 : rsp_is_data ? !dfifo_full : rsp_is_fetch ? !fetch_rsp_stall : 1'b1;
assign m_be_out_tdata = dfifo_data_mem[dfifo_rd_ptr_reg[DFIFO_PTR_WIDTH-1:0]];
assign m_be_out_tkeep = dfifo_keep_mem[dfifo_rd_ptr_reg[DFIFO_PTR_WIDTH-1:0]];
assign m_be_out_tvalid = !dfifo_empty && !aborting;
assign m_be_out_tlast = dfifo_last_mem[dfifo_rd_ptr_reg[DFIFO_PTR_WIDTH-1:0]];
assign m_be_out_tuser = dfifo_user_mem[dfifo_rd_ptr_reg[DFIFO_PTR_WIDTH-1:0]];
wire dfifo_push = s_rd_rsp_tvalid && rsp_is_data && !dfifo_full && !aborting;
// buffer data in flight: requested (+ at issue) minus received (+ per byte pushed); fetch
// responses drain behind every data read issued before them (virtio_dma_rd's in-order
// drain), so the read issuer keeps at most DATA_INFLIGHT_BYTES outstanding
reg [31:0] data_req_bytes_reg, data_rx_bytes_reg;
reg [6:0] dfifo_push_bytes;
integer kb;
always @* begin
    dfifo_push_bytes = 7'd0;
    for (kb = 0; kb < KEEP_WIDTH; kb = kb + 1)
        dfifo_push_bytes = dfifo_push_bytes + {6'd0, s_rd_rsp_tkeep[kb]};
end
wire [31:0] data_inflight = data_req_bytes_reg - data_rx_bytes_reg;
wire data_room = data_inflight < DATA_INFLIGHT_BYTES;
wire dfifo_pop = m_be_out_tvalid && m_be_out_tready;
wire rsp_beat = s_rd_rsp_tvalid && s_rd_rsp_tready && !aborting;
wire fetch_rsp_beat = rsp_beat && rsp_is_fetch;
wire event_rsp_beat = rsp_beat && s_rd_rsp_tdest == DEST_EVENT;
wire data_rsp_last = dfifo_pop && m_be_out_tlast;   // the back end has taken a chain's readable bytes
wire rsp_error = rsp_beat && s_rd_rsp_tlast && s_rd_rsp_tuser;

// ================================================================= ring stage
localparam [2:0]
    R_IDLE = 3'd0,        // pick a queue with a pending doorbell
    R_START = 3'd1,       // latch the queue configuration
    R_RUN = 3'd2,         // read the index and ring blocks
    R_EVENT_WAIT = 3'd4,  // avail_event written: wait until it is sent, then read the index again
    R_FLUSH = 3'd5;       // queue reset: wait for fetch reads, drop what was not walked

reg [2:0] r_state_reg;
reg [QUEUE_INDEX_WIDTH-1:0] r_queue_reg;
reg [15:0] r_qsz_reg;
reg [63:0] r_driver_reg, r_device_reg;
reg [15:0] r_avail_reg;              // avail->idx last read
reg [15:0] r_next_reg;               // next ring slot to read (free running)
reg        r_need_idx_reg;           // read the index (again)
reg        r_idx_out_reg;            // an index read is in flight
reg [4:0]  r_ring_out_reg;           // ring reads in flight
reg        r_recheck_reg;            // the index read follows an avail_event write
reg        r_leave_reg;              // another queue waits: leave after what is known
// doorbell data with EVENT_IDX: avail_event follows the known index at once (not only when the
// round ends), so the driver's next batch rings a doorbell; each write is followed by an index
// read that catches entries added before the driver could see it
wire       r_ev_follow = ndata_mode && event_idx;
reg [15:0] r_ev_sent_reg;            // avail_event value last requested in this round
reg        r_ev_busy_reg;            // that write is not done yet
reg [QUEUE_INDEX_WIDTH-1:0] r_rr_reg;
reg [15:0] r_ndata_reg;              // the doorbell's avail idx taken with the queue
reg        r_ndata_valid_reg;

assign q_a_queue = r_state_reg == R_IDLE ? f_pick : r_queue_reg;

// the next queue with a pending doorbell, round robin
reg [QUEUE_INDEX_WIDTH-1:0] f_pick;
reg f_pick_valid;
integer pq;
reg [31:0] f_candidate;
always @* begin
    f_pick = r_rr_reg;
    f_pick_valid = 1'b0;
    f_candidate = 32'd0;
    for (pq = NUM_QUEUES - 1; pq >= 0; pq = pq - 1) begin
        f_candidate = ({{(32-QUEUE_INDEX_WIDTH){1'b0}}, r_rr_reg} + 32'd1 + pq) % NUM_QUEUES;
        if (pending_reg[f_candidate[QUEUE_INDEX_WIDTH-1:0]]) begin
            f_pick = f_candidate[QUEUE_INDEX_WIDTH-1:0];
            f_pick_valid = 1'b1;
        end
    end
end
wire others_pending = |(pending_reg & ~({{(NUM_QUEUES-1){1'b0}}, 1'b1} << r_queue_reg));
// the doorbell's avail idx stands in for the first index read if it announces entries not yet
// read from the ring (beyond last_avail + in flight) and is no more than the queue size ahead of
// the walker (the limit an index read is held to); otherwise the index is read as usual
wire [15:0] r_ndata_ahead = r_ndata_reg - last_avail_reg[r_queue_reg];
wire [15:0] r_absorb_new = notify_idx - r_avail_reg;
wire [15:0] r_absorb_ahead = notify_idx - last_avail_reg[r_queue_reg];
wire r_absorb = ndata_mode && notify_valid && notify_data && notify_queue == r_queue_reg &&
                r_state_reg == R_RUN && !r_leave_reg && !any_queue_reset &&
                !(fetch_rsp_beat && !exp_empty && exp_kind == EXP_IDX) &&
                r_absorb_new != 16'd0 && r_absorb_new <= r_qsz_reg && r_absorb_ahead <= r_qsz_reg;
wire r_ndata_use = r_ndata_valid_reg && r_ndata_ahead > inflight_reg[r_queue_reg] && r_ndata_ahead <= q_a_size;

// head FIFO: available-ring entries read, waiting for a context
reg [15:0]                  head_mem [0:HEAD_FIFO_DEPTH-1];
reg [QUEUE_INDEX_WIDTH-1:0] head_q_mem [0:HEAD_FIFO_DEPTH-1];
reg [HEAD_PTR_WIDTH:0] head_wr_ptr_reg, head_rd_ptr_reg;
reg [5:0] head_reserved_reg;                       // entries of ring reads in flight
wire [HEAD_PTR_WIDTH:0] head_count = head_wr_ptr_reg - head_rd_ptr_reg;
wire head_empty = head_wr_ptr_reg == head_rd_ptr_reg;
wire [6:0] head_free = HEAD_FIFO_DEPTH[6:0] - {1'b0, head_count} - {1'b0, head_reserved_reg};

wire [15:0] r_qmask = r_qsz_reg - 16'd1;
wire [15:0] r_slot = r_next_reg & r_qmask;
wire [15:0] r_known = r_avail_reg - r_next_reg;
wire [15:0] r_to_wrap = r_qsz_reg - r_slot;
wire [15:0] r_block_a = r_known < RING_BLOCK ? r_known : RING_BLOCK;
wire [15:0] r_block = r_block_a < r_to_wrap ? r_block_a : r_to_wrap;

wire ring_issue = r_state_reg == R_RUN && !any_queue_reset && !r_rq_valid &&
                  r_known != 16'd0 && {1'b0, head_free} >= {2'b0, r_block[5:0]} && r_block != 16'd0;
// ring block being unloaded into the head FIFO (one entry per cycle)
reg [DATA_WIDTH-1:0] ring_beat_reg;
reg [4:0] ring_beat_left_reg;                      // entries left in this beat
reg [4:0] ring_left_reg;                           // entries left in the ring read
reg       ring_busy_reg;

// ================================================================= contexts
reg [QUEUE_INDEX_WIDTH-1:0] ctx_queue [0:NUM_CTX-1];
reg [15:0] ctx_head [0:NUM_CTX-1];
reg [63:0] ctx_table [0:NUM_CTX-1];     // table the buffer holds descriptors of
reg [31:0] ctx_tsize [0:NUM_CTX-1];     // its number of entries
reg [31:0] ctx_base [0:NUM_CTX-1];      // table index of buffer entry 0
reg [4:0]  ctx_cnt [0:NUM_CTX-1];       // descriptors in the buffer
reg [NUM_CTX-1:0] ctx_indirect;         // the buffer holds the head's indirect table
reg [NUM_CTX-1:0] ctx_ready;            // the buffer is filled
reg [NUM_CTX-1:0] ctx_fault;            // head out of range
reg [CTX_WIDTH:0] alloc_ptr_reg, walk_ptr_reg;
wire ctx_avail = (alloc_ptr_reg - walk_ptr_reg) != NUM_CTX[CTX_WIDTH:0];
wire ctx_none = alloc_ptr_reg == walk_ptr_reg;

// descriptor buffer: BANKS RAMs of 128-bit descriptors
reg [127:0] bank0_mem [0:BANK_DEPTH-1];
reg [127:0] bank1_mem [0:BANK_DEPTH-1];
reg [127:0] bank0_rd_reg, bank1_rd_reg;

// filling from responses
reg [CTX_POS_WIDTH:0] fill_pos_reg;      // next buffer entry
reg        fill_half_reg;                // 64-bit bus: second half of a descriptor
reg [63:0] fill_low_reg;
reg [95:0] peek_reg;                     // first descriptor of a head read (address, length)
// (with two banks the top bit of these is 0)
/* verilator lint_off UNUSEDSIGNAL */
wire [CTX_WIDTH+CTX_POS_WIDTH-1:0] fill_full = {exp_ctx, fill_pos_reg[CTX_POS_WIDTH-1:0]} >> (BANKS - 1);
/* verilator lint_on UNUSEDSIGNAL */
wire [BANK_ADDR_WIDTH-1:0] fill_addr = fill_full[BANK_ADDR_WIDTH-1:0];

// ================================================================= walker
localparam [2:0]
    W_IDLE = 3'd0,    // wait for the oldest context
    W_RD = 3'd1,      // read the current descriptor from the buffer (or refill it)
    W_PARSE = 3'd2,   // check it, queue its segment, follow next / indirect
    W_WAIT = 3'd3,    // refill in flight
    W_COMMIT = 3'd4,  // the chain is complete: publish it
    W_STOP = 3'd5;    // error: wait for a device reset

reg [2:0] w_state_reg;
wire [CTX_WIDTH-1:0] w_ctx = walk_ptr_reg[CTX_WIDTH-1:0];
reg [QUEUE_INDEX_WIDTH-1:0] w_queue_reg;
reg [15:0] w_head_reg;
reg [63:0] w_table_reg;
reg [31:0] w_tsize_reg;
reg [31:0] w_idx_reg;                     // current descriptor index in the table
reg        w_in_indirect_reg;
reg [31:0] w_count_reg;                   // descriptors visited in the current table
reg [15:0] w_segs_reg;
reg [15:0] w_rsegs_reg, w_wsegs_reg;
reg [32:0] w_out_len_reg, w_in_len_reg;   // 33 bits: overflow detection
reg        w_seen_write_reg;
reg        w_pos_odd_reg;                 // bank of the descriptor read

wire [31:0] w_pos = w_idx_reg - ctx_base[w_ctx];
wire w_in_buf = w_pos < {27'd0, ctx_cnt[w_ctx]};
/* verilator lint_off UNUSEDSIGNAL */
wire [CTX_WIDTH+CTX_POS_WIDTH-1:0] w_rd_full = {w_ctx, w_pos[CTX_POS_WIDTH-1:0]} >> (BANKS - 1);
/* verilator lint_on UNUSEDSIGNAL */
wire [BANK_ADDR_WIDTH-1:0] w_rd_addr = w_rd_full[BANK_ADDR_WIDTH-1:0];
wire [127:0] w_desc = (BANKS == 2 && w_pos_odd_reg) ? bank1_rd_reg : bank0_rd_reg;
wire [63:0] desc_addr = w_desc[63:0];
wire [31:0] desc_len = w_desc[95:64];
wire [15:0] desc_flags = w_desc[111:96];
wire [15:0] desc_next = w_desc[127:112];

wire d_indirect = desc_flags[VRING_DESC_F_INDIRECT];
wire d_next = desc_flags[VRING_DESC_F_NEXT];
wire d_write = desc_flags[VRING_DESC_F_WRITE];
wire [32:0] d_out_sum = w_out_len_reg + {1'b0, desc_len};
wire [32:0] d_in_sum = w_in_len_reg + {1'b0, desc_len};
wire d_bad_indirect = d_indirect && (w_in_indirect_reg || !indirect_ok || d_next ||
                                     desc_len == 32'd0 || desc_len[3:0] != 4'd0);
wire d_bad_order = !d_indirect && !d_write && w_seen_write_reg;
wire d_overflow = !d_indirect && (d_write ? d_in_sum[32] : d_out_sum[32]);
wire d_too_many = !d_indirect && desc_len != 32'd0 && w_segs_reg >= MAX_CHAIN_SEGS[15:0];
wire d_bad_next = !d_indirect && d_next &&
                  ({16'd0, desc_next} >= w_tsize_reg || w_count_reg + 32'd1 >= w_tsize_reg);
wire d_error = d_bad_indirect || d_bad_order || d_overflow || d_too_many || d_bad_next;

// ---------------------------------------------------------------- segment FIFOs (per direction)
// written by the walker (uncommitted until the chain is complete), read by the issuers
reg [63:0] rseg_addr_mem [0:SEG_FIFO_DEPTH-1];
reg [31:0] rseg_len_mem [0:SEG_FIFO_DEPTH-1];
reg [63:0] wseg_addr_mem [0:SEG_FIFO_DEPTH-1];
reg [31:0] wseg_len_mem [0:SEG_FIFO_DEPTH-1];
reg [SEG_PTR_WIDTH:0] rseg_wr_ptr_reg, rseg_commit_reg, rseg_rd_ptr_reg;
reg [SEG_PTR_WIDTH:0] wseg_wr_ptr_reg, wseg_commit_reg, wseg_rd_ptr_reg;
wire rseg_full = rseg_wr_ptr_reg == {~rseg_rd_ptr_reg[SEG_PTR_WIDTH], rseg_rd_ptr_reg[SEG_PTR_WIDTH-1:0]};
wire wseg_full = wseg_wr_ptr_reg == {~wseg_rd_ptr_reg[SEG_PTR_WIDTH], wseg_rd_ptr_reg[SEG_PTR_WIDTH-1:0]};

// ---------------------------------------------------------------- chain FIFO
reg [QUEUE_INDEX_WIDTH-1:0] chain_queue_mem [0:CHAIN_FIFO_DEPTH-1];
reg [15:0] chain_head_mem [0:CHAIN_FIFO_DEPTH-1];
reg [31:0] chain_out_mem [0:CHAIN_FIFO_DEPTH-1];
reg [31:0] chain_in_mem [0:CHAIN_FIFO_DEPTH-1];
reg [15:0] chain_rsegs_mem [0:CHAIN_FIFO_DEPTH-1];
reg [15:0] chain_wsegs_mem [0:CHAIN_FIFO_DEPTH-1];
reg [15:0] chain_rd_end_mem [0:CHAIN_FIFO_DEPTH-1];   // read packets done when its bytes are consumed
reg [15:0] chain_wr_end_mem [0:CHAIN_FIFO_DEPTH-1];   // data writes done when its writes are sent
reg [CHAIN_FIFO_DEPTH-1:0] chain_rd_issued;            // its reads are all requested
reg [CHAIN_FIFO_DEPTH-1:0] chain_wr_issued;            // its writes are all requested
reg [CHAIN_PTR_WIDTH:0] chain_wr_ptr_reg;     // walker
reg [CHAIN_PTR_WIDTH:0] be_ptr_reg;           // back-end requests
reg [CHAIN_PTR_WIDTH:0] ri_ptr_reg;           // read issuer
reg [CHAIN_PTR_WIDTH:0] wi_ptr_reg;           // write issuer
reg [CHAIN_PTR_WIDTH:0] done_ptr_reg;         // completer (frees)
wire chain_full = chain_wr_ptr_reg == {~done_ptr_reg[CHAIN_PTR_WIDTH], done_ptr_reg[CHAIN_PTR_WIDTH-1:0]};
wire chain_empty = chain_wr_ptr_reg == done_ptr_reg;

reg [15:0] rd_pkts_issued_reg, rd_pkts_done_reg;     // data read packets (one per chain with readable bytes)
reg [15:0] wr_issued_reg, wr_done_cnt_reg;           // data write requests

// ================================================================= back-end requests
wire [CHAIN_PTR_WIDTH-1:0] be_slot = be_ptr_reg[CHAIN_PTR_WIDTH-1:0];
reg be_loaded_reg;

// ================================================================= read issuer
localparam [1:0] RI_IDLE = 2'd0, RI_SEG = 2'd1, RI_ISSUE = 2'd2;
reg [1:0] ri_state_reg;
wire [CHAIN_PTR_WIDTH-1:0] ri_slot = ri_ptr_reg[CHAIN_PTR_WIDTH-1:0];
reg [31:0] ri_out_len_reg, ri_issued_reg;
reg [15:0] ri_segs_left_reg;
reg [63:0] ri_addr_reg;
reg [31:0] ri_left_reg;
wire [31:0] ri_chunk = ri_left_reg < DMA_MAX_LEN ? ri_left_reg : DMA_MAX_LEN;

// ================================================================= write issuer
localparam [1:0] WI_IDLE = 2'd0, WI_SEG = 2'd1, WI_ISSUE = 2'd2;
reg [1:0] wi_state_reg;
wire [CHAIN_PTR_WIDTH-1:0] wi_slot = wi_ptr_reg[CHAIN_PTR_WIDTH-1:0];
reg [15:0] wi_segs_left_reg;
reg [63:0] wi_addr_reg;
reg [31:0] wi_left_reg;
wire [31:0] wi_chunk = wi_left_reg < DMA_MAX_LEN ? wi_left_reg : DMA_MAX_LEN;

// ================================================================= completer
localparam [1:0] C_IDLE = 2'd0, C_ELEM = 2'd1, C_IDX = 2'd2;
reg [1:0] c_state_reg;
wire [CHAIN_PTR_WIDTH-1:0] c_slot = done_ptr_reg[CHAIN_PTR_WIDTH-1:0];
reg [QUEUE_INDEX_WIDTH-1:0] c_queue_reg;
reg [7:0] c_batch_reg;
wire [15:0] c_used_idx = used_idx_reg[c_queue_reg];
wire [15:0] c_qmask = q_b_size - 16'd1;
assign q_b_queue = c_state_reg == C_IDLE ? chain_queue_mem[c_slot] : c_queue_reg;

// the chain at done_ptr is complete: handed to the back end, its bytes consumed, its writes sent
// (free-running counters: only the sign of the difference matters)
/* verilator lint_off UNUSEDSIGNAL */
wire [15:0] c_rd_diff = rd_pkts_done_reg - chain_rd_end_mem[c_slot];
wire [15:0] c_wr_diff = wr_done_cnt_reg - chain_wr_end_mem[c_slot];
/* verilator lint_on UNUSEDSIGNAL */
wire c_ready = !chain_empty && done_ptr_reg != be_ptr_reg &&
               chain_rd_issued[c_slot] && !c_rd_diff[15] &&
               chain_wr_issued[c_slot] && !c_wr_diff[15];

// ================================================================= interrupt machine
// A decision read (used_event, or avail->flags without EVENT_IDX) goes out as soon as a used
// index write has been sent and covers (used_checked_reg, used_published_reg] at that moment;
// up to I_DEPTH decisions are in flight, answered in order (DEST_EVENT keeps request order).
localparam I_DEPTH = 4;
localparam I_PTR_WIDTH = 2;
reg [QUEUE_INDEX_WIDTH-1:0] i_q_mem [0:I_DEPTH-1];
reg [15:0]                  i_old_mem [0:I_DEPTH-1];
reg [15:0]                  i_new_mem [0:I_DEPTH-1];
reg [I_PTR_WIDTH:0] i_wr_ptr_reg, i_rd_ptr_reg;
wire i_empty = i_wr_ptr_reg == i_rd_ptr_reg;
wire i_full = i_wr_ptr_reg == {~i_rd_ptr_reg[I_PTR_WIDTH], i_rd_ptr_reg[I_PTR_WIDTH-1:0]};
wire [QUEUE_INDEX_WIDTH-1:0] i_queue = i_q_mem[i_rd_ptr_reg[I_PTR_WIDTH-1:0]];
wire [15:0] i_old = i_old_mem[i_rd_ptr_reg[I_PTR_WIDTH-1:0]];
wire [15:0] i_new = i_new_mem[i_rd_ptr_reg[I_PTR_WIDTH-1:0]];
reg [QUEUE_INDEX_WIDTH-1:0] i_pick;
reg i_pick_valid;
integer iq;
always @* begin
    i_pick = {QUEUE_INDEX_WIDTH{1'b0}};
    i_pick_valid = 1'b0;
    for (iq = NUM_QUEUES - 1; iq >= 0; iq = iq - 1) begin
        if (used_published_reg[iq] != used_checked_reg[iq]) begin
            i_pick = iq[QUEUE_INDEX_WIDTH-1:0];
            i_pick_valid = 1'b1;
        end
    end
end
// vring_need_event(used_event, new, old)
wire [15:0] i_event_value = s_rd_rsp_tdata[15:0];
wire [15:0] i_need_a = i_new - i_event_value - 16'd1;
wire [15:0] i_need_b = i_new - i_old;
wire i_need_irq = event_idx ? (i_need_a < i_need_b) : !i_event_value[VRING_AVAIL_F_NO_INTERRUPT];

// ================================================================= faults found while walking
wire w_fault = (w_state_reg == W_PARSE && d_error) ||
               (w_state_reg == W_IDLE && !ctx_none && ctx_fault[w_ctx]);
// avail->idx more than the queue size ahead of the walker
// with doorbell data the known index may run ahead of an index read in flight: a value at or
// behind the known one (by at most the queue size) is old news, not a fault
wire [15:0] r_idx_back = r_avail_reg - s_rd_rsp_tdata[15:0];
wire r_idx_behind = ndata_mode && r_idx_back <= r_qsz_reg;
wire r_fault = fetch_rsp_beat && !exp_empty && exp_kind == EXP_IDX && !r_idx_behind &&
               s_rd_rsp_tdata[15:0] - last_avail_reg[r_queue_reg] > r_qsz_reg;

assign quiesced = r_state_reg == R_IDLE && !r_rq_valid && !r_wq_valid &&
                  (ctx_none || aborting) && (head_empty || aborting) && !ring_busy_reg &&
                  !a_rq_valid && !p_rq_valid && !w_rq_valid &&
                  (w_state_reg == W_IDLE || w_state_reg == W_STOP) &&
                  (chain_empty || aborting) && !be_loaded_reg && !m_be_req_valid &&
                  ri_state_reg == RI_IDLE && !d_rq_valid &&
                  wi_state_reg == WI_IDLE && !d_wq_valid &&
                  c_state_reg == C_IDLE && !c_wq_valid &&
                  (i_empty || aborting) && !i_rq_valid &&
                  (dfifo_empty || aborting) && rd_idle && wr_idle && iwr_idle && be_idle;

// ================================================================= fetch response side (combinational)
// the ring stage unloads a ring beat one entry per cycle: stall while busy; a head read whose
// indirect table must be requested waits for the table request register
wire exp_is_desc = exp_kind == EXP_DESC;
wire [15:0] ring_entry = ring_beat_reg[15:0];
wire ring_read_done = ring_busy_reg && ring_beat_left_reg == 5'd1 && ring_left_reg == 5'd0;
wire peek_desc_ok;
wire [255:0] rsp_pad = {{(256-DATA_WIDTH){1'b0}}, s_rd_rsp_tdata};
wire [111:0] peek_desc = DATA_WIDTH == 64 ? {rsp_pad[47:0], fill_low_reg} : rsp_pad[111:0];
wire [15:0] peek_flags = peek_desc[111:96];
wire [31:0] peek_len = peek_desc[95:64];
// a head read (not a refill, not a table) whose first descriptor is a well-formed INDIRECT one
reg [NUM_CTX-1:0] ctx_head_read;   // the context's read in flight is its head read
assign peek_desc_ok = indirect_ok && peek_flags[VRING_DESC_F_INDIRECT] && !peek_flags[VRING_DESC_F_NEXT] &&
                      peek_len != 32'd0 && peek_len[3:0] == 4'd0;
reg peek_hit_reg;                  // the head read's first descriptor asks for its table
// this beat completes the first descriptor of the read
wire peek_first = fill_pos_reg == 0 && (DATA_WIDTH != 64 || fill_half_reg);
wire [31:0] peek_any_len = peek_first ? peek_len : peek_reg[95:64];
reg [NUM_CTX-1:0] ctx_need_table;  // its indirect table is still to be requested
reg [CTX_WIDTH-1:0] p_pick;
integer pc;
always @* begin
    p_pick = {CTX_WIDTH{1'b0}};
    for (pc = NUM_CTX - 1; pc >= 0; pc = pc - 1)
        if (ctx_need_table[pc])
            p_pick = pc[CTX_WIDTH-1:0];
end
always @* begin
    fetch_rsp_stall = 1'b0;
    if (!exp_empty) begin
        if (exp_kind == EXP_RING && ring_busy_reg)
            fetch_rsp_stall = 1'b1;
    end
end

// ================================================================= sequential logic
always @(posedge clk) begin
    queue_irq_valid <= 1'b0;
    needs_reset <= 1'b0;

    // ---------------------------------------------------------------- port bookkeeping
    rd_lock_reg <= m_rd_req_valid && !m_rd_req_ready;
    if (!rd_lock_reg)
        rd_lock_src_reg <= rd_pick;
    wr_lock_reg <= m_iwr_req_valid && !m_iwr_req_ready;
    if (!wr_lock_reg)
        wr_lock_src_reg <= wr_pick;

    if (rd_fire) begin
        case (rd_sel)
            SRC_P: p_rq_valid <= 1'b0;
            SRC_W: w_rq_valid <= 1'b0;
            SRC_A: a_rq_valid <= 1'b0;
            SRC_R: r_rq_valid <= 1'b0;
            SRC_I: i_rq_valid <= 1'b0;
            SRC_D: d_rq_valid <= 1'b0;
            default: ;
        endcase
    end
    if (rd_fire_fetch) begin
        exp_kind_mem[exp_wr_ptr_reg[EXP_PTR_WIDTH-1:0]] <= rd_sel == SRC_R ? r_rq_kind : EXP_DESC;
        exp_ctx_mem[exp_wr_ptr_reg[EXP_PTR_WIDTH-1:0]] <= rd_sel == SRC_P ? p_rq_ctx : rd_sel == SRC_W ? w_rq_ctx : a_rq_ctx;
        exp_n_mem[exp_wr_ptr_reg[EXP_PTR_WIDTH-1:0]] <= r_rq_n;
        exp_wr_ptr_reg <= exp_wr_ptr_reg + 1'b1;
    end

    if (wr_fire) begin
        owner_mem[owner_wr_ptr_reg[OWNER_PTR_WIDTH-1:0]] <= wr_fire_owner;
        owner_wr_ptr_reg <= owner_wr_ptr_reg + 1'b1;
        case (wr_sel)
            WSRC_C: c_wq_valid <= 1'b0;
            WSRC_R: r_wq_valid <= 1'b0;
            default: ;
        endcase
        if (wr_sel == WSRC_C && c_wq_idx) begin
            uidx_q_mem[uidx_wr_ptr_reg[OWNER_PTR_WIDTH-1:0]] <= c_wq_queue;
            uidx_v_mem[uidx_wr_ptr_reg[OWNER_PTR_WIDTH-1:0]] <= c_wq_data[15:0];
            uidx_wr_ptr_reg <= uidx_wr_ptr_reg + 1'b1;
        end
    end
    if (d_wr_fire)
        d_wq_valid <= 1'b0;
    if (iwr_done)
        owner_rd_ptr_reg <= owner_rd_ptr_reg + 1'b1;
    if (data_wr_done)
        wr_done_cnt_reg <= wr_done_cnt_reg + 16'd1;
    if (idx_wr_done) begin
        used_published_reg[uidx_q] <= uidx_v;
        uidx_rd_ptr_reg <= uidx_rd_ptr_reg + 1'b1;
    end
    if (data_rsp_last)
        rd_pkts_done_reg <= rd_pkts_done_reg + 16'd1;
    if (dfifo_push)
        data_rx_bytes_reg <= data_rx_bytes_reg + {25'd0, dfifo_push_bytes};
    if (dfifo_push) begin
        dfifo_data_mem[dfifo_wr_ptr_reg[DFIFO_PTR_WIDTH-1:0]] <= s_rd_rsp_tdata;
        dfifo_keep_mem[dfifo_wr_ptr_reg[DFIFO_PTR_WIDTH-1:0]] <= s_rd_rsp_tkeep;
        dfifo_last_mem[dfifo_wr_ptr_reg[DFIFO_PTR_WIDTH-1:0]] <= s_rd_rsp_tlast;
        dfifo_user_mem[dfifo_wr_ptr_reg[DFIFO_PTR_WIDTH-1:0]] <= s_rd_rsp_tuser;
        dfifo_wr_ptr_reg <= dfifo_wr_ptr_reg + 1'b1;
    end
    if (dfifo_pop)
        dfifo_rd_ptr_reg <= dfifo_rd_ptr_reg + 1'b1;

    // ---------------------------------------------------------------- fetch responses
    if (fetch_rsp_beat && !exp_empty) begin
        case (exp_kind)
            EXP_IDX: begin
                r_idx_out_reg <= 1'b0;
                if (r_fault) begin
                    // the driver claims more new entries than the ring holds: stop (below)
                end else if (s_rd_rsp_tdata[15:0] != r_avail_reg && !r_idx_behind) begin
                    r_avail_reg <= s_rd_rsp_tdata[15:0];
                    r_recheck_reg <= 1'b0;
                    // more may follow: look again (without doorbell data), unless another
                    // queue waits its turn
                    if (others_pending)
                        r_leave_reg <= 1'b1;
                    else if (!ndata_mode)
                        r_need_idx_reg <= 1'b1;
                end
            end
            EXP_RING: begin
                ring_beat_reg <= s_rd_rsp_tdata;
                ring_busy_reg <= 1'b1;
                if (ring_left_reg == 5'd0) begin
                    // first beat of this ring read
                    ring_beat_left_reg <= exp_n < RING_PER_BEAT ? exp_n : RING_PER_BEAT;
                    ring_left_reg <= exp_n - (exp_n < RING_PER_BEAT ? exp_n : RING_PER_BEAT);
                end else begin
                    ring_beat_left_reg <= ring_left_reg < RING_PER_BEAT ? ring_left_reg : RING_PER_BEAT;
                    ring_left_reg <= ring_left_reg - (ring_left_reg < RING_PER_BEAT ? ring_left_reg : RING_PER_BEAT);
                end
            end
            default: begin
                // descriptors into the context's buffer
                if (DATA_WIDTH == 64) begin
                    if (fill_half_reg) begin
                        bank0_mem[fill_addr] <= {rsp_pad[63:0], fill_low_reg};
                        fill_pos_reg <= fill_pos_reg + 1'b1;
                    end else begin
                        fill_low_reg <= rsp_pad[63:0];
                    end
                    fill_half_reg <= !fill_half_reg;
                end else if (DATA_WIDTH == 128) begin
                    bank0_mem[fill_addr] <= rsp_pad[127:0];
                    fill_pos_reg <= fill_pos_reg + 1'b1;
                end else begin
                    bank0_mem[fill_addr] <= rsp_pad[127:0];
                    bank1_mem[fill_addr] <= rsp_pad[255:128];
                    fill_pos_reg <= fill_pos_reg + 5'd2;
                end
                // the first descriptor of a head read: is it a well-formed INDIRECT one?
                if (peek_first)
                    peek_hit_reg <= ctx_head_read[exp_ctx] && peek_desc_ok;
                if (s_rd_rsp_tlast) begin
                    fill_pos_reg <= 0;
                    fill_half_reg <= 1'b0;
                    if (ctx_head_read[exp_ctx] && (peek_first ? peek_desc_ok : peek_hit_reg)) begin
                        // read the whole indirect table (up to CTX_DESCS entries) next
                        ctx_need_table[exp_ctx] <= 1'b1;
                        ctx_indirect[exp_ctx] <= 1'b1;
                        ctx_table[exp_ctx] <= peek_first ? peek_desc[63:0] : peek_reg[63:0];
                        ctx_tsize[exp_ctx] <= {4'd0, peek_any_len[31:4]};
                        ctx_base[exp_ctx] <= 32'd0;
                        if (peek_any_len >= {23'd0, CTX_DESCS, 4'b0000})
                            ctx_cnt[exp_ctx] <= CTX_DESCS;
                        else
                            ctx_cnt[exp_ctx] <= peek_any_len[8:4];
                    end else begin
                        ctx_ready[exp_ctx] <= 1'b1;
                    end
                    ctx_head_read[exp_ctx] <= 1'b0;
                end
            end
        endcase
        if (peek_first && exp_is_desc)
            peek_reg <= peek_desc[95:0];
        if (s_rd_rsp_tlast)
            exp_rd_ptr_reg <= exp_rd_ptr_reg + 1'b1;
    end

    // ring beat unloading into the head FIFO
    if (ring_busy_reg) begin
        head_mem[head_wr_ptr_reg[HEAD_PTR_WIDTH-1:0]] <= ring_entry;
        head_q_mem[head_wr_ptr_reg[HEAD_PTR_WIDTH-1:0]] <= r_queue_reg;
        head_wr_ptr_reg <= head_wr_ptr_reg + 1'b1;
        inflight_reg[r_queue_reg] <= inflight_reg[r_queue_reg] + 16'd1;
        ring_beat_reg <= ring_beat_reg >> 16;
        ring_beat_left_reg <= ring_beat_left_reg - 5'd1;
        if (ring_beat_left_reg == 5'd1) begin
            ring_busy_reg <= 1'b0;
        end
    end

    // ---------------------------------------------------------------- ring stage
    case (r_state_reg)
        R_IDLE: begin
            // a doorbell while bus mastering is off waits for it (the DMA engines would refuse)
            if (driver_ok && bus_master_enable && !aborting && !any_queue_reset && f_pick_valid) begin
                r_queue_reg <= f_pick;
                r_rr_reg <= f_pick;
                pending_reg[f_pick] <= 1'b0;
                r_ndata_reg <= ndata_idx_reg[f_pick];
                r_ndata_valid_reg <= ndata_valid_reg[f_pick];
                ndata_valid_reg[f_pick] <= 1'b0;
                r_state_reg <= R_START;
            end
        end
        R_START: begin
            if (!q_a_enable || q_a_size == 16'd0) begin
                r_state_reg <= R_IDLE;
            end else begin
                r_qsz_reg <= q_a_size;
                r_driver_reg <= q_a_driver;
                r_device_reg <= q_a_device;
                qdesc_reg[r_queue_reg] <= q_a_desc;
                qsize_reg[r_queue_reg] <= q_a_size;
                r_next_reg <= last_avail_reg[r_queue_reg] + inflight_reg[r_queue_reg];
                r_recheck_reg <= 1'b0;
                r_ev_busy_reg <= 1'b0;
                r_state_reg <= R_RUN;
                if (r_ndata_use) begin
                    // as if the index read had returned the doorbell's value: read the ring
                    // entries (the next doorbell brings what follows; avail_event asks for it)
                    r_avail_reg <= r_ndata_reg;
                    r_ev_sent_reg <= ~r_ndata_reg;
                    r_need_idx_reg <= 1'b0;
                    r_leave_reg <= others_pending;
                end else begin
                    r_avail_reg <= last_avail_reg[r_queue_reg] + inflight_reg[r_queue_reg];
                    r_ev_sent_reg <= last_avail_reg[r_queue_reg] + inflight_reg[r_queue_reg];
                    r_need_idx_reg <= 1'b1;
                    r_leave_reg <= 1'b0;
                end
            end
        end
        R_RUN: begin
            if (any_queue_reset) begin
                r_state_reg <= R_FLUSH;
            end else if (!r_rq_valid) begin
                if (ring_issue) begin
                    r_rq_valid <= 1'b1;
                    r_rq_addr <= r_driver_reg + 64'd4 + {47'd0, r_slot, 1'b0};
                    r_rq_len <= {r_block[11:0], 1'b0};
                    r_rq_kind <= EXP_RING;
                    r_rq_n <= r_block[4:0];
                    r_next_reg <= r_next_reg + r_block;
                end else if (r_need_idx_reg && !r_idx_out_reg && r_known < RING_BLOCK && !r_leave_reg) begin
                    r_rq_valid <= 1'b1;
                    r_rq_addr <= r_driver_reg + 64'd2;
                    r_rq_len <= 13'd2;
                    r_rq_kind <= EXP_IDX;
                    r_need_idx_reg <= 1'b0;
                    r_idx_out_reg <= 1'b1;
                end else if (r_ev_follow && !r_wq_valid && !r_ev_busy_reg && r_ev_sent_reg != r_avail_reg &&
                             !r_leave_reg) begin
                    // avail_event = the known index, then (when sent) the index once more
                    r_wq_valid <= 1'b1;
                    r_wq_addr <= r_device_reg + 64'd4 + {45'd0, r_qsz_reg, 3'b000};
                    r_wq_data <= r_avail_reg;
                    r_ev_sent_reg <= r_avail_reg;
                    r_ev_busy_reg <= 1'b1;
                end else if (!r_need_idx_reg && !r_idx_out_reg && r_known == 16'd0 && r_ring_out_reg == 5'd0 &&
                             !r_ev_busy_reg && !r_wq_valid && (!r_ev_follow || r_leave_reg || r_ev_sent_reg == r_avail_reg)) begin
                    // everything known is read
                    if (r_leave_reg) begin
                        pending_reg[r_queue_reg] <= 1'b1;
                        r_state_reg <= R_IDLE;
                    end else if (event_idx && !r_recheck_reg && !r_ev_follow) begin
                        r_wq_valid <= 1'b1;
                        r_wq_addr <= r_device_reg + 64'd4 + {45'd0, r_qsz_reg, 3'b000};
                        r_wq_data <= r_avail_reg;
                        r_state_reg <= R_EVENT_WAIT;
                    end else begin
                        r_state_reg <= R_IDLE;
                    end
                end
            end
        end
        R_EVENT_WAIT: begin
            if (fetch_wr_done) begin
                // a buffer made available before the driver saw avail_event gets no kick: look
                // again (only without doorbell data: with it avail_event follows the index in
                // R_RUN and this state is not used)
                r_recheck_reg <= 1'b1;
                r_need_idx_reg <= 1'b1;
                r_state_reg <= R_RUN;
            end
        end
        R_FLUSH: ;
        default: r_state_reg <= R_IDLE;
    endcase

    // avail_event following the known index: sent, so read the index once more
    if (r_state_reg == R_RUN && r_ev_busy_reg && fetch_wr_done) begin
        r_ev_busy_reg <= 1'b0;
        r_need_idx_reg <= 1'b1;
    end

    // ring reads in flight and head FIFO entries they reserve: issued (+), unloaded (-)
    head_reserved_reg <= head_reserved_reg + (ring_issue ? r_block[5:0] : 6'd0) - (ring_busy_reg ? 6'd1 : 6'd0);
    r_ring_out_reg <= r_ring_out_reg + (ring_issue ? 5'd1 : 5'd0) - (ring_read_done ? 5'd1 : 5'd0);

    // ---------------------------------------------------------------- context allocation
    if (!a_rq_valid && !head_empty && ctx_avail && !any_queue_reset && !aborting) begin
        ctx_queue[alloc_ptr_reg[CTX_WIDTH-1:0]] <= head_q_mem[head_rd_ptr_reg[HEAD_PTR_WIDTH-1:0]];
        ctx_head[alloc_ptr_reg[CTX_WIDTH-1:0]] <= head_mem[head_rd_ptr_reg[HEAD_PTR_WIDTH-1:0]];
        ctx_table[alloc_ptr_reg[CTX_WIDTH-1:0]] <= qdesc_reg[head_q_mem[head_rd_ptr_reg[HEAD_PTR_WIDTH-1:0]]];
        ctx_tsize[alloc_ptr_reg[CTX_WIDTH-1:0]] <= {16'd0, qsize_reg[head_q_mem[head_rd_ptr_reg[HEAD_PTR_WIDTH-1:0]]]};
        ctx_base[alloc_ptr_reg[CTX_WIDTH-1:0]] <= {16'd0, head_mem[head_rd_ptr_reg[HEAD_PTR_WIDTH-1:0]]};
        ctx_indirect[alloc_ptr_reg[CTX_WIDTH-1:0]] <= 1'b0;
        ctx_ready[alloc_ptr_reg[CTX_WIDTH-1:0]] <= 1'b0;
        head_rd_ptr_reg <= head_rd_ptr_reg + 1'b1;
        alloc_ptr_reg <= alloc_ptr_reg + 1'b1;
        if (head_mem[head_rd_ptr_reg[HEAD_PTR_WIDTH-1:0]] >= qsize_reg[head_q_mem[head_rd_ptr_reg[HEAD_PTR_WIDTH-1:0]]]) begin
            // head out of range: an error when the walker gets there
            ctx_fault[alloc_ptr_reg[CTX_WIDTH-1:0]] <= 1'b1;
            ctx_cnt[alloc_ptr_reg[CTX_WIDTH-1:0]] <= 5'd0;
        end else begin
            ctx_fault[alloc_ptr_reg[CTX_WIDTH-1:0]] <= 1'b0;
            ctx_head_read[alloc_ptr_reg[CTX_WIDTH-1:0]] <= 1'b1;
            a_rq_valid <= 1'b1;
            a_rq_ctx <= alloc_ptr_reg[CTX_WIDTH-1:0];
            a_rq_addr <= qdesc_reg[head_q_mem[head_rd_ptr_reg[HEAD_PTR_WIDTH-1:0]]] +
                         {44'd0, head_mem[head_rd_ptr_reg[HEAD_PTR_WIDTH-1:0]], 4'b0000};
            if ({16'd0, qsize_reg[head_q_mem[head_rd_ptr_reg[HEAD_PTR_WIDTH-1:0]]]} -
                {16'd0, head_mem[head_rd_ptr_reg[HEAD_PTR_WIDTH-1:0]]} >= {27'd0, HEAD_DESCS}) begin
                a_rq_len <= {4'd0, HEAD_DESCS, 4'b0000};
                ctx_cnt[alloc_ptr_reg[CTX_WIDTH-1:0]] <= HEAD_DESCS;
            end else begin
                a_rq_len <= {qsize_reg[head_q_mem[head_rd_ptr_reg[HEAD_PTR_WIDTH-1:0]]][8:0] -
                             head_mem[head_rd_ptr_reg[HEAD_PTR_WIDTH-1:0]][8:0], 4'b0000};
                ctx_cnt[alloc_ptr_reg[CTX_WIDTH-1:0]] <= qsize_reg[head_q_mem[head_rd_ptr_reg[HEAD_PTR_WIDTH-1:0]]][4:0] -
                                                         head_mem[head_rd_ptr_reg[HEAD_PTR_WIDTH-1:0]][4:0];
            end
        end
    end

    // ---------------------------------------------------------------- indirect tables of heads
    if (!p_rq_valid && |ctx_need_table && !aborting) begin
        p_rq_valid <= 1'b1;
        p_rq_ctx <= p_pick;
        p_rq_addr <= ctx_table[p_pick];
        p_rq_len <= {4'd0, ctx_cnt[p_pick], 4'b0000};
        ctx_need_table[p_pick] <= 1'b0;
    end

    // ---------------------------------------------------------------- walker
    case (w_state_reg)
        W_IDLE: begin
            if (!ctx_none && !aborting && (ctx_ready[w_ctx] || ctx_fault[w_ctx])) begin
                if (ctx_fault[w_ctx]) begin
                    w_state_reg <= W_STOP;
                end else begin
                    w_queue_reg <= ctx_queue[w_ctx];
                    w_head_reg <= ctx_head[w_ctx];
                    w_table_reg <= ctx_table[w_ctx];
                    w_tsize_reg <= ctx_tsize[w_ctx];
                    w_idx_reg <= ctx_indirect[w_ctx] ? 32'd0 : {16'd0, ctx_head[w_ctx]};
                    w_in_indirect_reg <= ctx_indirect[w_ctx];
                    w_count_reg <= 32'd0;
                    w_segs_reg <= 16'd0;
                    w_rsegs_reg <= 16'd0;
                    w_wsegs_reg <= 16'd0;
                    w_out_len_reg <= 33'd0;
                    w_in_len_reg <= 33'd0;
                    w_seen_write_reg <= 1'b0;
                    w_state_reg <= W_RD;
                end
            end
        end
        W_RD: begin
            if (w_in_buf) begin
                bank0_rd_reg <= bank0_mem[w_rd_addr];
                bank1_rd_reg <= bank1_mem[w_rd_addr];
                w_pos_odd_reg <= w_pos[0];
                w_state_reg <= W_PARSE;
            end else if (!w_rq_valid && r_state_reg != R_FLUSH) begin
                // refill the buffer from the current descriptor on
                w_rq_valid <= 1'b1;
                w_rq_ctx <= w_ctx;
                w_rq_addr <= w_table_reg + {28'd0, w_idx_reg, 4'b0000};
                ctx_base[w_ctx] <= w_idx_reg;
                ctx_ready[w_ctx] <= 1'b0;
                if (w_tsize_reg - w_idx_reg >= {27'd0, w_in_indirect_reg ? CTX_DESCS : HEAD_DESCS}) begin
                    w_rq_len <= {4'd0, w_in_indirect_reg ? CTX_DESCS : HEAD_DESCS, 4'b0000};
                    ctx_cnt[w_ctx] <= w_in_indirect_reg ? CTX_DESCS : HEAD_DESCS;
                end else begin
                    w_rq_len <= {w_tsize_reg[8:0] - w_idx_reg[8:0], 4'b0000};
                    ctx_cnt[w_ctx] <= w_tsize_reg[4:0] - w_idx_reg[4:0];
                end
                w_state_reg <= W_WAIT;
            end
        end
        W_WAIT: begin
            if (ctx_ready[w_ctx])
                w_state_reg <= W_RD;
        end
        W_PARSE: begin
            if (d_error) begin
                w_state_reg <= W_STOP;
            end else if (d_indirect) begin
                // the rest of the chain is the indirect table, from its entry 0
                w_table_reg <= desc_addr;
                w_tsize_reg <= {4'd0, desc_len[31:4]};
                w_idx_reg <= 32'd0;
                w_in_indirect_reg <= 1'b1;
                w_count_reg <= 32'd0;
                ctx_cnt[w_ctx] <= 5'd0;   // nothing of the new table buffered yet
                w_state_reg <= W_RD;
            end else if (desc_len != 32'd0 && (d_write ? wseg_full : rseg_full)) begin
                // wait for room
            end else begin
                if (desc_len != 32'd0) begin
                    if (d_write) begin
                        wseg_addr_mem[wseg_wr_ptr_reg[SEG_PTR_WIDTH-1:0]] <= desc_addr;
                        wseg_len_mem[wseg_wr_ptr_reg[SEG_PTR_WIDTH-1:0]] <= desc_len;
                        wseg_wr_ptr_reg <= wseg_wr_ptr_reg + 1'b1;
                        w_wsegs_reg <= w_wsegs_reg + 16'd1;
                    end else begin
                        rseg_addr_mem[rseg_wr_ptr_reg[SEG_PTR_WIDTH-1:0]] <= desc_addr;
                        rseg_len_mem[rseg_wr_ptr_reg[SEG_PTR_WIDTH-1:0]] <= desc_len;
                        rseg_wr_ptr_reg <= rseg_wr_ptr_reg + 1'b1;
                        w_rsegs_reg <= w_rsegs_reg + 16'd1;
                    end
                    w_segs_reg <= w_segs_reg + 16'd1;
                end
                if (d_write) begin
                    w_in_len_reg <= d_in_sum;
                    w_seen_write_reg <= 1'b1;
                end else begin
                    w_out_len_reg <= d_out_sum;
                end
                w_count_reg <= w_count_reg + 32'd1;
                if (d_next) begin
                    w_idx_reg <= {16'd0, desc_next};
                    w_state_reg <= W_RD;
                end else begin
                    w_state_reg <= W_COMMIT;
                end
            end
        end
        W_COMMIT: begin
            if (!chain_full) begin
                chain_queue_mem[chain_wr_ptr_reg[CHAIN_PTR_WIDTH-1:0]] <= w_queue_reg;
                chain_head_mem[chain_wr_ptr_reg[CHAIN_PTR_WIDTH-1:0]] <= w_head_reg;
                chain_out_mem[chain_wr_ptr_reg[CHAIN_PTR_WIDTH-1:0]] <= w_out_len_reg[31:0];
                chain_in_mem[chain_wr_ptr_reg[CHAIN_PTR_WIDTH-1:0]] <= w_in_len_reg[31:0];
                chain_rsegs_mem[chain_wr_ptr_reg[CHAIN_PTR_WIDTH-1:0]] <= w_rsegs_reg;
                chain_wsegs_mem[chain_wr_ptr_reg[CHAIN_PTR_WIDTH-1:0]] <= w_wsegs_reg;
                chain_rd_issued[chain_wr_ptr_reg[CHAIN_PTR_WIDTH-1:0]] <= 1'b0;
                chain_wr_issued[chain_wr_ptr_reg[CHAIN_PTR_WIDTH-1:0]] <= 1'b0;
                chain_wr_ptr_reg <= chain_wr_ptr_reg + 1'b1;
                rseg_commit_reg <= rseg_wr_ptr_reg;
                wseg_commit_reg <= wseg_wr_ptr_reg;
                last_avail_reg[w_queue_reg] <= last_avail_reg[w_queue_reg] + 16'd1;
                inflight_reg[w_queue_reg] <= inflight_reg[w_queue_reg] - 16'd1;
                walk_ptr_reg <= walk_ptr_reg + 1'b1;
                w_state_reg <= W_IDLE;
            end
        end
        W_STOP: ;
        default: w_state_reg <= W_IDLE;
    endcase
    // the unloader and the walker may both change a queue's in-flight count in one cycle
    if (ring_busy_reg && w_state_reg == W_COMMIT && !chain_full && w_queue_reg == r_queue_reg)
        inflight_reg[r_queue_reg] <= inflight_reg[r_queue_reg];

    // ---------------------------------------------------------------- back-end requests
    if (!be_loaded_reg) begin
        if (be_ptr_reg != chain_wr_ptr_reg && !aborting) begin
            m_be_req_out_len <= chain_out_mem[be_slot];
            m_be_req_in_len <= chain_in_mem[be_slot];
            be_loaded_reg <= 1'b1;
        end
    end else if (m_be_req_valid && m_be_req_ready) begin
        be_loaded_reg <= 1'b0;
        be_ptr_reg <= be_ptr_reg + 1'b1;
    end

    // ---------------------------------------------------------------- read issuer
    case (ri_state_reg)
        RI_IDLE: begin
            if (ri_ptr_reg != chain_wr_ptr_reg && !aborting) begin
                if (chain_out_mem[ri_slot] == 32'd0) begin
                    chain_rd_end_mem[ri_slot] <= rd_pkts_issued_reg;
                    chain_rd_issued[ri_slot] <= 1'b1;
                    ri_ptr_reg <= ri_ptr_reg + 1'b1;
                end else begin
                    ri_out_len_reg <= chain_out_mem[ri_slot];
                    ri_segs_left_reg <= chain_rsegs_mem[ri_slot];
                    ri_issued_reg <= 32'd0;
                    ri_state_reg <= RI_SEG;
                end
            end
        end
        RI_SEG: begin
            ri_addr_reg <= rseg_addr_mem[rseg_rd_ptr_reg[SEG_PTR_WIDTH-1:0]];
            ri_left_reg <= rseg_len_mem[rseg_rd_ptr_reg[SEG_PTR_WIDTH-1:0]];
            rseg_rd_ptr_reg <= rseg_rd_ptr_reg + 1'b1;
            ri_segs_left_reg <= ri_segs_left_reg - 16'd1;
            ri_state_reg <= RI_ISSUE;
        end
        RI_ISSUE: begin
            if (!d_rq_valid && data_room) begin
                data_req_bytes_reg <= data_req_bytes_reg + ri_chunk;
                d_rq_valid <= 1'b1;
                d_rq_addr <= ri_addr_reg;
                d_rq_len <= ri_chunk[12:0];
                d_rq_last <= ri_issued_reg + ri_chunk == ri_out_len_reg;
                ri_addr_reg <= ri_addr_reg + {32'd0, ri_chunk};
                ri_left_reg <= ri_left_reg - ri_chunk;
                ri_issued_reg <= ri_issued_reg + ri_chunk;
                if (ri_left_reg == ri_chunk) begin
                    if (ri_segs_left_reg == 16'd0) begin
                        chain_rd_end_mem[ri_slot] <= rd_pkts_issued_reg + 16'd1;
                        chain_rd_issued[ri_slot] <= 1'b1;
                        rd_pkts_issued_reg <= rd_pkts_issued_reg + 16'd1;
                        ri_ptr_reg <= ri_ptr_reg + 1'b1;
                        ri_state_reg <= RI_IDLE;
                    end else begin
                        ri_state_reg <= RI_SEG;
                    end
                end
            end
        end
        default: ri_state_reg <= RI_IDLE;
    endcase

    // ---------------------------------------------------------------- write issuer
    case (wi_state_reg)
        WI_IDLE: begin
            if (wi_ptr_reg != chain_wr_ptr_reg && !aborting) begin
                if (chain_wsegs_mem[wi_slot] == 16'd0) begin
                    chain_wr_end_mem[wi_slot] <= wr_issued_reg;
                    chain_wr_issued[wi_slot] <= 1'b1;
                    wi_ptr_reg <= wi_ptr_reg + 1'b1;
                end else begin
                    wi_segs_left_reg <= chain_wsegs_mem[wi_slot];
                    wi_state_reg <= WI_SEG;
                end
            end
        end
        WI_SEG: begin
            wi_addr_reg <= wseg_addr_mem[wseg_rd_ptr_reg[SEG_PTR_WIDTH-1:0]];
            wi_left_reg <= wseg_len_mem[wseg_rd_ptr_reg[SEG_PTR_WIDTH-1:0]];
            wseg_rd_ptr_reg <= wseg_rd_ptr_reg + 1'b1;
            wi_segs_left_reg <= wi_segs_left_reg - 16'd1;
            wi_state_reg <= WI_ISSUE;
        end
        WI_ISSUE: begin
            if (!d_wq_valid) begin
                d_wq_valid <= 1'b1;
                d_wq_addr <= wi_addr_reg;
                d_wq_len <= wi_chunk[12:0];
                wi_addr_reg <= wi_addr_reg + {32'd0, wi_chunk};
                wi_left_reg <= wi_left_reg - wi_chunk;
                wr_issued_reg <= wr_issued_reg + 16'd1;
                if (wi_left_reg == wi_chunk) begin
                    if (wi_segs_left_reg == 16'd0) begin
                        chain_wr_end_mem[wi_slot] <= wr_issued_reg + 16'd1;
                        chain_wr_issued[wi_slot] <= 1'b1;
                        wi_ptr_reg <= wi_ptr_reg + 1'b1;
                        wi_state_reg <= WI_IDLE;
                    end else begin
                        wi_state_reg <= WI_SEG;
                    end
                end
            end
        end
        default: wi_state_reg <= WI_IDLE;
    endcase

    // ---------------------------------------------------------------- completer
    case (c_state_reg)
        C_IDLE: begin
            if (c_ready && !aborting) begin
                c_queue_reg <= chain_queue_mem[c_slot];
                c_batch_reg <= 8'd0;
                c_state_reg <= C_ELEM;
            end
        end
        C_ELEM: begin
            if (!c_wq_valid) begin
                // used->ring[idx] = {head, in_len}  (struct virtq_used_elem {le32 id; le32 len})
                c_wq_valid <= 1'b1;
                c_wq_idx <= 1'b0;
                c_wq_addr <= q_b_device + 64'd4 + {45'd0, c_used_idx & c_qmask, 3'b000};
                c_wq_len <= 4'd8;
                c_wq_data <= {chain_in_mem[c_slot], 16'd0, chain_head_mem[c_slot]};
                used_idx_reg[c_queue_reg] <= c_used_idx + 16'd1;
                event_addr_reg[c_queue_reg] <= event_idx ? q_b_driver + 64'd4 + {47'd0, q_b_size, 1'b0} : q_b_driver;
                done_ptr_reg <= done_ptr_reg + 1'b1;
                c_batch_reg <= c_batch_reg + 8'd1;
                c_state_reg <= C_IDX;
            end
        end
        C_IDX: begin
            // the next chain of the same queue already complete: its element first, one index write
            if (c_ready && chain_queue_mem[c_slot] == c_queue_reg && c_batch_reg < USED_BATCH) begin
                c_state_reg <= C_ELEM;
            end else if (!c_wq_valid) begin
                c_wq_valid <= 1'b1;
                c_wq_idx <= 1'b1;
                c_wq_queue <= c_queue_reg;
                c_wq_addr <= q_b_device + 64'd2;
                c_wq_len <= 4'd2;
                c_wq_data <= {48'd0, c_used_idx};
                c_state_reg <= C_IDLE;
            end
        end
        default: c_state_reg <= C_IDLE;
    endcase

    // ---------------------------------------------------------------- interrupt machine
    if (!i_rq_valid && !i_full && i_pick_valid && !aborting && !any_queue_reset) begin
        i_q_mem[i_wr_ptr_reg[I_PTR_WIDTH-1:0]] <= i_pick;
        i_old_mem[i_wr_ptr_reg[I_PTR_WIDTH-1:0]] <= used_checked_reg[i_pick];
        i_new_mem[i_wr_ptr_reg[I_PTR_WIDTH-1:0]] <= used_published_reg[i_pick];
        i_wr_ptr_reg <= i_wr_ptr_reg + 1'b1;
        used_checked_reg[i_pick] <= used_published_reg[i_pick];
        i_rq_valid <= 1'b1;
        i_rq_addr <= event_addr_reg[i_pick];
    end
    if (event_rsp_beat && !i_empty) begin
        if (i_need_irq) begin
            queue_irq_valid <= 1'b1;
            queue_irq_queue <= i_queue;
        end
        i_rd_ptr_reg <= i_rd_ptr_reg + 1'b1;
    end

    // ---------------------------------------------------------------- errors
    // a malformed chain or a failed DMA: stop, and ask the transport for DEVICE_NEEDS_RESET once.
    // A DMA read of the engine that fails (UR, CA, poisoned, timeout, bus mastering off) ends
    // its response packet with tuser (rsp_error). rd_error is not used: it also pulses for a
    // completion that is no longer expected, e.g. the late answer to a read that timed out
    // before a device reset, which must not stop a device that is working again.
    if ((w_fault || r_fault || rsp_error) && !dev_reset && !error_reg) begin
        error_reg <= 1'b1;
        needs_reset <= 1'b1;
    end

    // doorbells for enabled queues (the transport filters the rest); after the machines so
    // that a doorbell in the cycle the queue is picked is not lost
    if (notify_valid) begin
        pending_reg[notify_queue] <= 1'b1;
        // the latest doorbell counts: one without data means the index must be read
        ndata_valid_reg[notify_queue] <= notify_data;
        ndata_idx_reg[notify_queue] <= notify_idx;
    end
    // a doorbell with data for the queue the ring stage is reading: its new entries join the
    // round at once (the doorbell stays pending too, so the queue is looked at again after)
    if (r_absorb)
        r_avail_reg <= notify_idx;

    // queue reset: stop fetching, wait for the fetch reads in flight, then drop what was fetched
    // and not walked (the walker stops between chains) and fetch it again afterwards
    if (any_queue_reset && !aborting && r_state_reg != R_FLUSH && r_state_reg != R_EVENT_WAIT &&
        (r_state_reg != R_IDLE || !head_empty || !ctx_none || ring_busy_reg))
        r_state_reg <= R_FLUSH;
    if (r_state_reg == R_FLUSH && !aborting && !r_rq_valid && !ring_busy_reg && !a_rq_valid && !p_rq_valid &&
        !w_rq_valid && exp_empty && !ring_busy_reg &&
        (w_state_reg == W_IDLE || w_state_reg == W_WAIT || w_state_reg == W_RD) && !(|ctx_need_table)) begin
        head_rd_ptr_reg <= head_wr_ptr_reg;
        head_reserved_reg <= 6'd0;
        alloc_ptr_reg <= walk_ptr_reg;
        rseg_wr_ptr_reg <= rseg_commit_reg;
        wseg_wr_ptr_reg <= wseg_commit_reg;
        ctx_head_read <= {NUM_CTX{1'b0}};
        ctx_need_table <= {NUM_CTX{1'b0}};
        w_state_reg <= W_IDLE;
        r_idx_out_reg <= 1'b0;
        r_ring_out_reg <= 5'd0;
        for (i = 0; i < NUM_QUEUES; i = i + 1)
            inflight_reg[i] <= 16'd0;
        pending_reg <= {NUM_QUEUES{1'b1}};
        r_state_reg <= R_IDLE;
    end

    if (aborting) begin
        // drop everything queued; the machines stop where they are
        r_state_reg <= R_IDLE;
        r_rq_valid <= 1'b0;
        r_wq_valid <= 1'b0;
        a_rq_valid <= 1'b0;
        p_rq_valid <= 1'b0;
        w_rq_valid <= 1'b0;
        i_rq_valid <= 1'b0;
        d_rq_valid <= 1'b0;
        d_wq_valid <= 1'b0;
        c_wq_valid <= 1'b0;
        ring_busy_reg <= 1'b0;
        head_rd_ptr_reg <= head_wr_ptr_reg;
        head_reserved_reg <= 6'd0;
        alloc_ptr_reg <= walk_ptr_reg;
        ctx_head_read <= {NUM_CTX{1'b0}};
        ctx_need_table <= {NUM_CTX{1'b0}};
        if (w_state_reg != W_STOP || dev_reset)
            w_state_reg <= error_reg ? W_STOP : W_IDLE;
        rseg_wr_ptr_reg <= rseg_commit_reg;
        wseg_wr_ptr_reg <= wseg_commit_reg;
        rseg_rd_ptr_reg <= rseg_commit_reg;
        wseg_rd_ptr_reg <= wseg_commit_reg;
        be_ptr_reg <= chain_wr_ptr_reg;
        ri_ptr_reg <= chain_wr_ptr_reg;
        wi_ptr_reg <= chain_wr_ptr_reg;
        done_ptr_reg <= chain_wr_ptr_reg;
        be_loaded_reg <= 1'b0;
        dfifo_rd_ptr_reg <= dfifo_wr_ptr_reg;
        ri_state_reg <= RI_IDLE;
        wi_state_reg <= WI_IDLE;
        c_state_reg <= C_IDLE;
        r_idx_out_reg <= 1'b0;
        r_ring_out_reg <= 5'd0;
        for (i = 0; i < NUM_QUEUES; i = i + 1)
            inflight_reg[i] <= 16'd0;
    end

    // ---------------------------------------------------------------- resets
    if (dev_reset) begin
        error_reg <= 1'b0;
        pending_reg <= {NUM_QUEUES{1'b0}};
        ndata_valid_reg <= {NUM_QUEUES{1'b0}};
        w_state_reg <= W_IDLE;
        if (quiesced) begin
            // the transport completes the reset this cycle: the rings start again at 0
            for (i = 0; i < NUM_QUEUES; i = i + 1) begin
                last_avail_reg[i] <= 16'd0;
                used_idx_reg[i] <= 16'd0;
                used_published_reg[i] <= 16'd0;
                used_checked_reg[i] <= 16'd0;
            end
            owner_rd_ptr_reg <= owner_wr_ptr_reg;
            uidx_rd_ptr_reg <= uidx_wr_ptr_reg;
            exp_rd_ptr_reg <= exp_wr_ptr_reg;
            i_rd_ptr_reg <= i_wr_ptr_reg;
            rd_pkts_done_reg <= rd_pkts_issued_reg;
            data_rx_bytes_reg <= data_req_bytes_reg;
            wr_done_cnt_reg <= wr_issued_reg;
        end
    end
    for (i = 0; i < NUM_QUEUES; i = i + 1) begin
        if (queue_reset_active[i] && quiesced) begin
            last_avail_reg[i] <= 16'd0;
            used_idx_reg[i] <= 16'd0;
            used_published_reg[i] <= 16'd0;
            used_checked_reg[i] <= 16'd0;
            inflight_reg[i] <= 16'd0;
            pending_reg[i] <= 1'b0;
            ndata_valid_reg[i] <= 1'b0;
        end
    end

    if (rst) begin
        data_req_bytes_reg <= 32'd0;
        data_rx_bytes_reg <= 32'd0;
        r_state_reg <= R_IDLE;
        r_ev_busy_reg <= 1'b0;
        w_state_reg <= W_IDLE;
        ri_state_reg <= RI_IDLE;
        wi_state_reg <= WI_IDLE;
        c_state_reg <= C_IDLE;
        i_wr_ptr_reg <= {(I_PTR_WIDTH+1){1'b0}};
        i_rd_ptr_reg <= {(I_PTR_WIDTH+1){1'b0}};
        error_reg <= 1'b0;
        pending_reg <= {NUM_QUEUES{1'b0}};
        ndata_valid_reg <= {NUM_QUEUES{1'b0}};
        r_ndata_valid_reg <= 1'b0;
        r_rq_valid <= 1'b0;
        r_wq_valid <= 1'b0;
        a_rq_valid <= 1'b0;
        p_rq_valid <= 1'b0;
        w_rq_valid <= 1'b0;
        i_rq_valid <= 1'b0;
        d_rq_valid <= 1'b0;
        d_wq_valid <= 1'b0;
        c_wq_valid <= 1'b0;
        c_wq_idx <= 1'b0;
        rd_lock_reg <= 1'b0;
        wr_lock_reg <= 1'b0;
        exp_wr_ptr_reg <= {(EXP_PTR_WIDTH+1){1'b0}};
        exp_rd_ptr_reg <= {(EXP_PTR_WIDTH+1){1'b0}};
        owner_wr_ptr_reg <= {(OWNER_PTR_WIDTH+1){1'b0}};
        owner_rd_ptr_reg <= {(OWNER_PTR_WIDTH+1){1'b0}};
        uidx_wr_ptr_reg <= {(OWNER_PTR_WIDTH+1){1'b0}};
        uidx_rd_ptr_reg <= {(OWNER_PTR_WIDTH+1){1'b0}};
        head_wr_ptr_reg <= {(HEAD_PTR_WIDTH+1){1'b0}};
        head_rd_ptr_reg <= {(HEAD_PTR_WIDTH+1){1'b0}};
        head_reserved_reg <= 6'd0;
        ring_busy_reg <= 1'b0;
        ring_left_reg <= 5'd0;
        r_idx_out_reg <= 1'b0;
        r_ring_out_reg <= 5'd0;
        alloc_ptr_reg <= {(CTX_WIDTH+1){1'b0}};
        walk_ptr_reg <= {(CTX_WIDTH+1){1'b0}};
        ctx_head_read <= {NUM_CTX{1'b0}};
        ctx_need_table <= {NUM_CTX{1'b0}};
        ctx_ready <= {NUM_CTX{1'b0}};
        ctx_fault <= {NUM_CTX{1'b0}};
        fill_pos_reg <= 0;
        fill_half_reg <= 1'b0;
        peek_hit_reg <= 1'b0;
        rseg_wr_ptr_reg <= {(SEG_PTR_WIDTH+1){1'b0}};
        rseg_commit_reg <= {(SEG_PTR_WIDTH+1){1'b0}};
        rseg_rd_ptr_reg <= {(SEG_PTR_WIDTH+1){1'b0}};
        wseg_wr_ptr_reg <= {(SEG_PTR_WIDTH+1){1'b0}};
        wseg_commit_reg <= {(SEG_PTR_WIDTH+1){1'b0}};
        wseg_rd_ptr_reg <= {(SEG_PTR_WIDTH+1){1'b0}};
        chain_wr_ptr_reg <= {(CHAIN_PTR_WIDTH+1){1'b0}};
        be_ptr_reg <= {(CHAIN_PTR_WIDTH+1){1'b0}};
        ri_ptr_reg <= {(CHAIN_PTR_WIDTH+1){1'b0}};
        wi_ptr_reg <= {(CHAIN_PTR_WIDTH+1){1'b0}};
        done_ptr_reg <= {(CHAIN_PTR_WIDTH+1){1'b0}};
        be_loaded_reg <= 1'b0;
        dfifo_wr_ptr_reg <= {(DFIFO_PTR_WIDTH+1){1'b0}};
        dfifo_rd_ptr_reg <= {(DFIFO_PTR_WIDTH+1){1'b0}};
        rd_pkts_issued_reg <= 16'd0;
        rd_pkts_done_reg <= 16'd0;
        wr_issued_reg <= 16'd0;
        wr_done_cnt_reg <= 16'd0;
        queue_irq_valid <= 1'b0;
        needs_reset <= 1'b0;
        r_rr_reg <= {QUEUE_INDEX_WIDTH{1'b0}};
        for (i = 0; i < NUM_QUEUES; i = i + 1) begin
            last_avail_reg[i] <= 16'd0;
            inflight_reg[i] <= 16'd0;
            used_idx_reg[i] <= 16'd0;
            used_published_reg[i] <= 16'd0;
            used_checked_reg[i] <= 16'd0;
        end
    end
end

always @* begin
    m_be_req_valid = be_loaded_reg && !aborting;
end

endmodule

`resetall
