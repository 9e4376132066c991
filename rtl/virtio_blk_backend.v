// SPDX-License-Identifier: Apache-2.0

`resetall
`timescale 1ns / 1ps
`default_nettype none

/*
 * virtio-blk back end: serves one request at a time from the chain's byte
 * streams (docs/ring-engine.md, "virtio_blk_backend"). The readable packet
 * (s_out) starts with the 16-byte request header {le32 type, le32 reserved,
 * le64 sector}; the writable packet (m_in) ends with the status byte. The disk
 * is an AXI4 memory at byte address sector x 512.
 *
 * IN streams AXI read bursts straight to m_in (several bursts outstanding);
 * OUT shifts the data that follows the header into AXI write beats (one
 * register stage when the header does not end on a beat boundary). Requests
 * that are malformed or out of range never touch the disk: their writable
 * bytes are zeros and the status says why. Both packets always have exactly
 * the lengths given with the request, whatever the header says, and a
 * readable packet whose length disagrees with out_len is consumed up to its
 * tlast and fails the request. abort (level) stops both streams at once, lets
 * the AXI bursts already issued finish (writes with no byte enabled) and then
 * raises idle. The full contract is in docs/ring-engine.md.
 */
module virtio_blk_backend #
(
    // width of the byte streams s_out and m_in (64, 128 or 256)
    parameter DATA_WIDTH = 64,
    // tkeep width of the byte streams
    parameter KEEP_WIDTH = DATA_WIDTH/8,
    // AXI data width (must equal DATA_WIDTH)
    parameter AXI_DATA_WIDTH = DATA_WIDTH,
    // AXI address width (the disk must fit: 2^AXI_ADDR_WIDTH bytes at most)
    parameter AXI_ADDR_WIDTH = 32,
    // AXI wstrb width
    parameter AXI_STRB_WIDTH = AXI_DATA_WIDTH/8,
    // AXI ID width
    parameter AXI_ID_WIDTH = 4,
    // AXI ID of every burst (all bursts use one ID, so responses come back in order)
    parameter AXI_ID = 0,
    // longest AXI burst in beats (power of two, 1..256); bursts never cross 4 KiB either way
    parameter AXI_MAX_BURST_LEN = 256,
    // AXI bursts outstanding per direction (1..64)
    parameter AXI_MAX_OUTSTANDING = 4,
    // refuse writes (VIRTIO_BLK_F_RO offered): OUT gets IOERR and never writes
    parameter READ_ONLY = 0,
    // GET_ID answer: 20 ASCII bytes, NUL padded, first character in bits 7:0
    parameter [159:0] ID_STRING = 160'h0000000000616770662d6b6c622d6f6974726976
)
(
    input  wire                       clk,
    input  wire                       rst,

    /*
     * Requests from the ring engine
     */
    input  wire                       s_req_valid,
    output wire                       s_req_ready,
    input  wire [31:0]                s_req_out_len,
    input  wire [31:0]                s_req_in_len,

    /*
     * Device-readable bytes of the chain (header, then OUT data)
     */
    input  wire [DATA_WIDTH-1:0]      s_out_tdata,
    input  wire [KEEP_WIDTH-1:0]      s_out_tkeep,
    input  wire                       s_out_tvalid,
    output wire                       s_out_tready,
    input  wire                       s_out_tlast,
    input  wire                       s_out_tuser,

    /*
     * Device-writable bytes of the chain (IN data or zeros, then the status)
     */
    output wire [DATA_WIDTH-1:0]      m_in_tdata,
    output wire [KEEP_WIDTH-1:0]      m_in_tkeep,
    output wire                       m_in_tvalid,
    input  wire                       m_in_tready,
    output wire                       m_in_tlast,

    /*
     * Disk size and control
     */
    input  wire [63:0]                capacity,
    input  wire                       abort,
    output wire                       idle,

    /*
     * AXI4 master to the disk memory
     */
    output wire [AXI_ID_WIDTH-1:0]    m_axi_awid,
    output wire [AXI_ADDR_WIDTH-1:0]  m_axi_awaddr,
    output wire [7:0]                 m_axi_awlen,
    output wire [2:0]                 m_axi_awsize,
    output wire [1:0]                 m_axi_awburst,
    output wire                       m_axi_awlock,
    output wire [3:0]                 m_axi_awcache,
    output wire [2:0]                 m_axi_awprot,
    output wire                       m_axi_awvalid,
    input  wire                       m_axi_awready,
    output wire [AXI_DATA_WIDTH-1:0]  m_axi_wdata,
    output wire [AXI_STRB_WIDTH-1:0]  m_axi_wstrb,
    output wire                       m_axi_wlast,
    output wire                       m_axi_wvalid,
    input  wire                       m_axi_wready,
    input  wire [AXI_ID_WIDTH-1:0]    m_axi_bid,
    input  wire [1:0]                 m_axi_bresp,
    input  wire                       m_axi_bvalid,
    output wire                       m_axi_bready,
    output wire [AXI_ID_WIDTH-1:0]    m_axi_arid,
    output wire [AXI_ADDR_WIDTH-1:0]  m_axi_araddr,
    output wire [7:0]                 m_axi_arlen,
    output wire [2:0]                 m_axi_arsize,
    output wire [1:0]                 m_axi_arburst,
    output wire                       m_axi_arlock,
    output wire [3:0]                 m_axi_arcache,
    output wire [2:0]                 m_axi_arprot,
    output wire                       m_axi_arvalid,
    input  wire                       m_axi_arready,
    input  wire [AXI_ID_WIDTH-1:0]    m_axi_rid,
    input  wire [AXI_DATA_WIDTH-1:0]  m_axi_rdata,
    input  wire [1:0]                 m_axi_rresp,
    input  wire                       m_axi_rlast,
    input  wire                       m_axi_rvalid,
    output wire                       m_axi_rready
);

`include "virtio_pci_defs.vh"

localparam BYTE_BITS = $clog2(KEEP_WIDTH);
localparam SECTOR_SHIFT = 9;                       // 512-byte sectors
localparam HDR_BYTES = 16;                         // sizeof(struct virtio_blk_outhdr)
// beats that carry header bytes, and header bytes in a beat shared with data
localparam HDR_BEATS = (HDR_BYTES + KEEP_WIDTH - 1) / KEEP_WIDTH;
localparam HDR_LANES = HDR_BYTES % KEEP_WIDTH;
localparam HDR_CHUNK = DATA_WIDTH < 128 ? DATA_WIDTH : 128;
localparam HDR_IDX_WIDTH = 2;
localparam [HDR_IDX_WIDTH-1:0] HDR_BEATS_IDX = HDR_BEATS[HDR_IDX_WIDTH-1:0];
// GET_ID answer, NUL padded to whole beats plus one zero beat
localparam ID_BEATS = (VIRTIO_BLK_ID_BYTES + KEEP_WIDTH - 1) / KEEP_WIDTH;
localparam ID_IDX_WIDTH = 2;
localparam [(ID_BEATS+1)*DATA_WIDTH-1:0] ID_WORDS = {{((ID_BEATS+1)*DATA_WIDTH-160){1'b0}}, ID_STRING};
// bursts: a power of two of bytes that divides 4 KiB, so no burst crosses 4 KiB
localparam MAX_BURST_BYTES = AXI_MAX_BURST_LEN * KEEP_WIDTH < 4096 ? AXI_MAX_BURST_LEN * KEEP_WIDTH : 4096;
localparam MAX_BURST_BEATS = MAX_BURST_BYTES / KEEP_WIDTH;
localparam CNT_WIDTH = $clog2(AXI_MAX_OUTSTANDING + 1);
localparam [CNT_WIDTH-1:0] CNT_MAX = AXI_MAX_OUTSTANDING[CNT_WIDTH-1:0];
// the disk end (in sectors) that still has an AXI address
localparam [64:0] ADDR_LIMIT_SECTORS = AXI_ADDR_WIDTH >= 64 ? {1'b1, 64'd0} >> 9 : 65'd1 << (AXI_ADDR_WIDTH - SECTOR_SHIFT);

localparam [1:0] AXI_BURST_INCR = 2'b01;
localparam [1:0] AXI_RESP_OKAY = 2'b00;
localparam [3:0] AXI_CACHE_MODIFIABLE = 4'b0011;   // normal non-cacheable bufferable
localparam [2:0] AXI_PROT_DATA = 3'b010;           // unprivileged, non-secure, data

initial begin
    if (DATA_WIDTH != 64 && DATA_WIDTH != 128 && DATA_WIDTH != 256) begin
        $error("Error: DATA_WIDTH must be 64, 128 or 256 (instance %m)");
        $finish;
    end
    if (KEEP_WIDTH * 8 != DATA_WIDTH) begin
        $error("Error: KEEP_WIDTH must be DATA_WIDTH/8 (instance %m)");
        $finish;
    end
    if (AXI_DATA_WIDTH != DATA_WIDTH) begin
        $error("Error: AXI_DATA_WIDTH must equal DATA_WIDTH (instance %m)");
        $finish;
    end
    if (AXI_STRB_WIDTH * 8 != AXI_DATA_WIDTH) begin
        $error("Error: AXI_STRB_WIDTH must be AXI_DATA_WIDTH/8 (instance %m)");
        $finish;
    end
    if (AXI_ADDR_WIDTH < 12 || AXI_ADDR_WIDTH > 64) begin
        $error("Error: AXI_ADDR_WIDTH must be 12..64 (instance %m)");
        $finish;
    end
    if (AXI_ID_WIDTH < 1 || AXI_ID >= (1 << AXI_ID_WIDTH)) begin
        $error("Error: AXI_ID_WIDTH must be at least 1 and AXI_ID fit in it (instance %m)");
        $finish;
    end
    if (AXI_MAX_BURST_LEN < 1 || AXI_MAX_BURST_LEN > 256 ||
            (AXI_MAX_BURST_LEN & (AXI_MAX_BURST_LEN - 1)) != 0) begin
        $error("Error: AXI_MAX_BURST_LEN must be a power of two, 1..256 (instance %m)");
        $finish;
    end
    if (AXI_MAX_OUTSTANDING < 1 || AXI_MAX_OUTSTANDING > 64) begin
        $error("Error: AXI_MAX_OUTSTANDING must be 1..64 (instance %m)");
        $finish;
    end
end

// Beats of a burst that starts at addr with left beats to go: up to the next
// MAX_BURST_BYTES boundary (which is also at most the next 4 KiB boundary).
function [8:0] burst_beats;
    input [11:0] addr;
    input [31:0] left;
    reg [31:0] offset;
    reg [31:0] room;
    begin
        offset = {20'd0, addr} & (MAX_BURST_BYTES - 1);
        room = MAX_BURST_BEATS - (offset >> BYTE_BITS);
        if (left < room) begin
            burst_beats = left[8:0];
        end else begin
            burst_beats = room[8:0];
        end
    end
endfunction

// tkeep of a last beat whose last byte is in lane lane
function [KEEP_WIDTH-1:0] keep_upto;
    input [BYTE_BITS-1:0] lane;
    begin
        keep_upto = {KEEP_WIDTH{1'b1}} >> ((KEEP_WIDTH - 1) - {{(32-BYTE_BITS){1'b0}}, lane});
    end
endfunction

// Control FSM
localparam [2:0]
    ST_IDLE   = 3'd0,   // wait for a request
    ST_HEADER = 3'd1,   // take the header beats from s_out
    ST_CHECK  = 3'd2,   // compute the end sector of the transfer
    ST_DECIDE = 3'd3,   // validate the request, choose the data sources, start AXI
    ST_RUN    = 3'd4,   // move data on both streams and AXI until only the status is left
    ST_STATUS = 3'd5,   // send the last writable beat, holding the status
    ST_ABORT  = 3'd6;   // abort: let issued AXI bursts finish, streams untouched

// Sources of the writable bytes before the status
localparam [1:0]
    IN_ZERO = 2'd0,     // zeros
    IN_ID   = 2'd1,     // ID_STRING, then zeros
    IN_DISK = 2'd2;     // AXI read data

reg [2:0] state_reg, state_next;

// ---- the request
reg [31:0] out_len_reg, out_len_next;
reg [31:0] in_len_reg, in_len_next;
reg [127:0] hdr_reg, hdr_next;
reg [64:0] end_sector_reg, end_sector_next;
reg [7:0] status_reg, status_next;
reg hdr_bad_reg, hdr_bad_next;

wire [31:0] hdr_type = hdr_reg[31:0];
wire [63:0] hdr_sector = hdr_reg[127:64];
wire [31:0] in_data_len = in_len_reg - 32'd1;
wire [31:0] out_data_len = out_len_reg - HDR_BYTES;
wire [AXI_ADDR_WIDTH-1:0] disk_addr = {hdr_sector[AXI_ADDR_WIDTH-SECTOR_SHIFT-1:0], {SECTOR_SHIFT{1'b0}}};
// beats of each packet (ceil(len / KEEP_WIDTH))
wire [31:0] req_out_beats = {{BYTE_BITS{1'b0}}, s_req_out_len[31:BYTE_BITS]} +
    {31'd0, |s_req_out_len[BYTE_BITS-1:0]};
wire [31:0] req_in_beats = {{BYTE_BITS{1'b0}}, s_req_in_len[31:BYTE_BITS]} +
    {31'd0, |s_req_in_len[BYTE_BITS-1:0]};

// ---- s_out side
reg out_active_reg, out_active_next;         // packet not finished (tlast not yet taken)
reg [31:0] out_beats_left_reg, out_beats_left_next;   // beats to the expected tlast
reg [KEEP_WIDTH-1:0] out_last_keep_reg, out_last_keep_next;
reg [HDR_IDX_WIDTH-1:0] out_hdr_idx_reg, out_hdr_idx_next;
reg out_err_reg, out_err_next;               // length mismatch or s_out_tuser
reg out_early_reg, out_early_next;           // tlast before out_len bytes
reg out_disk_reg, out_disk_next;             // the data goes to the disk
reg [31:0] w_data_left_reg, w_data_left_next;         // write beats still to take from s_out
reg [DATA_WIDTH-1:0] saved_reg, saved_next;  // previous s_out beat
reg s_out_tready_int;

// ---- m_in side
reg [1:0] in_mode_reg, in_mode_next;
reg [31:0] in_beats_left_reg, in_beats_left_next;     // beats still to send, status beat included
reg [ID_IDX_WIDTH-1:0] in_idx_reg, in_idx_next;           // beat number, saturating at ID_BEATS
reg [BYTE_BITS-1:0] status_lane_reg, status_lane_next;

// internal m_in stream, into the output register
reg [DATA_WIDTH-1:0] m_in_tdata_int;
reg [KEEP_WIDTH-1:0] m_in_tkeep_int;
reg m_in_tvalid_int;
reg m_in_tlast_int;
reg m_in_tready_int_reg;
wire m_in_tready_int_early;

// ---- AXI read
reg [AXI_ADDR_WIDTH-1:0] rd_addr_reg, rd_addr_next;
reg [31:0] rd_beats_left_reg, rd_beats_left_next;     // beats not yet requested
reg [CNT_WIDTH-1:0] rd_cnt_reg, rd_cnt_next;             // bursts issued, last beat not received
reg rd_err_reg, rd_err_next;
reg [AXI_ADDR_WIDTH-1:0] m_axi_araddr_reg, m_axi_araddr_next;
reg [7:0] m_axi_arlen_reg, m_axi_arlen_next;
reg m_axi_arvalid_reg, m_axi_arvalid_next;
reg m_axi_rready_int;

// ---- AXI write
reg [AXI_ADDR_WIDTH-1:0] wr_addr_reg, wr_addr_next;
reg [31:0] wr_beats_left_reg, wr_beats_left_next;     // beats not yet covered by an AW
reg [CNT_WIDTH-1:0] wr_cnt_reg, wr_cnt_next;             // bursts issued, response not received
reg [CNT_WIDTH-1:0] w_pend_reg, w_pend_next;             // bursts issued, last W beat not sent
reg [AXI_ADDR_WIDTH-1:0] w_addr_reg, w_addr_next;
reg [31:0] w_beats_left_reg, w_beats_left_next;       // W beats of bursts not yet started
reg [8:0] w_burst_left_reg, w_burst_left_next;         // W beats left in the current burst
reg wr_err_reg, wr_err_next;
reg [AXI_ADDR_WIDTH-1:0] m_axi_awaddr_reg, m_axi_awaddr_next;
reg [7:0] m_axi_awlen_reg, m_axi_awlen_next;
reg m_axi_awvalid_reg, m_axi_awvalid_next;

// internal W stream, into the output register
reg [AXI_DATA_WIDTH-1:0] m_axi_wdata_int;
reg [AXI_STRB_WIDTH-1:0] m_axi_wstrb_int;
reg m_axi_wlast_int;
reg m_axi_wvalid_int;
reg m_axi_wready_int_reg;
wire m_axi_wready_int_early;

// no beat moves on either stream while abort is high
wire s_out_fire = s_out_tvalid && s_out_tready;
wire rd_fire = m_axi_rvalid && m_axi_rready;

// the next request is taken when idle or with the status beat of the current one
assign s_req_ready = (state_reg == ST_IDLE || (state_reg == ST_STATUS && m_in_tready_int_reg)) && !abort;
assign s_out_tready = s_out_tready_int && !abort;

assign m_axi_arid = AXI_ID[AXI_ID_WIDTH-1:0];
assign m_axi_araddr = m_axi_araddr_reg;
assign m_axi_arlen = m_axi_arlen_reg;
assign m_axi_arsize = BYTE_BITS[2:0];
assign m_axi_arburst = AXI_BURST_INCR;
assign m_axi_arlock = 1'b0;
assign m_axi_arcache = AXI_CACHE_MODIFIABLE;
assign m_axi_arprot = AXI_PROT_DATA;
assign m_axi_arvalid = m_axi_arvalid_reg;
assign m_axi_rready = m_axi_rready_int;

assign m_axi_awid = AXI_ID[AXI_ID_WIDTH-1:0];
assign m_axi_awaddr = m_axi_awaddr_reg;
assign m_axi_awlen = m_axi_awlen_reg;
assign m_axi_awsize = BYTE_BITS[2:0];
assign m_axi_awburst = AXI_BURST_INCR;
assign m_axi_awlock = 1'b0;
assign m_axi_awcache = AXI_CACHE_MODIFIABLE;
assign m_axi_awprot = AXI_PROT_DATA;
assign m_axi_awvalid = m_axi_awvalid_reg;
assign m_axi_bready = 1'b1;

// request checks
wire range_ok = end_sector_reg <= {1'b0, capacity} && end_sector_reg <= ADDR_LIMIT_SECTORS;
wire in_ok = in_len_reg != 32'd0 && in_data_len[SECTOR_SHIFT-1:0] == 9'd0 && range_ok;
wire out_ok = in_len_reg != 32'd0 && out_data_len[SECTOR_SHIFT-1:0] == 9'd0 && range_ok &&
    READ_ONLY == 0;

wire [8:0] ar_beats = burst_beats(rd_addr_reg[11:0], rd_beats_left_reg);
wire [8:0] aw_beats = burst_beats(wr_addr_reg[11:0], wr_beats_left_reg);
wire [8:0] w_burst_beats = w_burst_left_reg != 9'd0 ? w_burst_left_reg :
    burst_beats(w_addr_reg[11:0], w_beats_left_reg);

// OUT data: the bytes after the header, realigned to the disk's beats
wire [DATA_WIDTH-1:0] out_data_aligned = HDR_LANES == 0 ? s_out_tdata :
    (s_out_tdata << ((KEEP_WIDTH - HDR_LANES) * 8)) | (saved_reg >> (HDR_LANES * 8));
// the beat ends the packet where it should not, or with tuser: do not write it
wire out_beat_bad = s_out_tlast &&
    (out_beats_left_reg != 32'd1 || s_out_tkeep != out_last_keep_reg || s_out_tuser);

// writable bytes before the status
wire [DATA_WIDTH-1:0] fill_word = in_mode_reg == IN_ID ?
    ID_WORDS[in_idx_reg * DATA_WIDTH +: DATA_WIDTH] : {DATA_WIDTH{1'b0}};
wire [KEEP_WIDTH-1:0] status_keep = keep_upto(status_lane_reg);
reg [DATA_WIDTH-1:0] status_word;
integer i;

always @* begin
    state_next = state_reg;

    out_len_next = out_len_reg;
    in_len_next = in_len_reg;
    hdr_next = hdr_reg;
    end_sector_next = end_sector_reg;
    status_next = status_reg;
    hdr_bad_next = hdr_bad_reg;

    out_active_next = out_active_reg;
    out_beats_left_next = out_beats_left_reg;
    out_last_keep_next = out_last_keep_reg;
    out_hdr_idx_next = out_hdr_idx_reg;
    out_err_next = out_err_reg;
    out_early_next = out_early_reg;
    out_disk_next = out_disk_reg;
    w_data_left_next = w_data_left_reg;
    saved_next = saved_reg;
    s_out_tready_int = 1'b0;

    in_mode_next = in_mode_reg;
    in_beats_left_next = in_beats_left_reg;
    in_idx_next = in_idx_reg;
    status_lane_next = status_lane_reg;

    m_in_tdata_int = {DATA_WIDTH{1'b0}};
    m_in_tkeep_int = {KEEP_WIDTH{1'b1}};
    m_in_tvalid_int = 1'b0;
    m_in_tlast_int = 1'b0;

    rd_addr_next = rd_addr_reg;
    rd_beats_left_next = rd_beats_left_reg;
    rd_cnt_next = rd_cnt_reg;
    rd_err_next = rd_err_reg;
    m_axi_araddr_next = m_axi_araddr_reg;
    m_axi_arlen_next = m_axi_arlen_reg;
    m_axi_arvalid_next = m_axi_arvalid_reg && !m_axi_arready;
    m_axi_rready_int = 1'b0;

    wr_addr_next = wr_addr_reg;
    wr_beats_left_next = wr_beats_left_reg;
    wr_cnt_next = wr_cnt_reg;
    w_pend_next = w_pend_reg;
    w_addr_next = w_addr_reg;
    w_beats_left_next = w_beats_left_reg;
    w_burst_left_next = w_burst_left_reg;
    wr_err_next = wr_err_reg;
    m_axi_awaddr_next = m_axi_awaddr_reg;
    m_axi_awlen_next = m_axi_awlen_reg;
    m_axi_awvalid_next = m_axi_awvalid_reg && !m_axi_awready;

    m_axi_wdata_int = {AXI_DATA_WIDTH{1'b0}};
    m_axi_wstrb_int = {AXI_STRB_WIDTH{1'b0}};
    m_axi_wlast_int = 1'b0;
    m_axi_wvalid_int = 1'b0;

    // the status beat: fill bytes, the status at the last lane, nothing above
    status_word = fill_word;
    for (i = 0; i < KEEP_WIDTH; i = i + 1) begin
        if (i == {{(32-BYTE_BITS){1'b0}}, status_lane_reg}) begin
            status_word[i*8 +: 8] = status_reg;
        end else if (!status_keep[i]) begin
            status_word[i*8 +: 8] = 8'd0;
        end
    end

    // ---- s_out: which beats we take
    case (state_reg)
        ST_HEADER: s_out_tready_int = out_active_reg && out_hdr_idx_reg < HDR_BEATS_IDX;
        ST_RUN: begin
            if (!out_active_reg) begin
                s_out_tready_int = 1'b0;
            end else if (out_disk_reg && w_data_left_reg != 32'd0) begin
                // one write beat per readable beat, inside a burst already issued
                s_out_tready_int = m_axi_wready_int_reg && w_pend_reg != 0;
            end else begin
                s_out_tready_int = 1'b1;    // nothing to keep: discard
            end
        end
        default: s_out_tready_int = 1'b0;
    endcase

    // ---- s_out: length checks on every beat taken
    if (s_out_fire) begin
        saved_next = s_out_tdata;
        if (out_beats_left_reg != 32'd0) begin
            out_beats_left_next = out_beats_left_reg - 32'd1;
        end
        if (s_out_tlast) begin
            out_active_next = 1'b0;
            if (out_beat_bad) begin
                out_err_next = 1'b1;
            end
            if (out_beats_left_reg > 32'd1) begin
                out_early_next = 1'b1;
            end
        end else if (out_beats_left_reg <= 32'd1) begin
            out_err_next = 1'b1;    // tlast missing: drop beats up to the one that has it
        end
    end

    // ---- AXI read: issue bursts
    if (!m_axi_arvalid_next && rd_beats_left_reg != 32'd0 && rd_cnt_reg != CNT_MAX) begin
        m_axi_araddr_next = rd_addr_reg;
        m_axi_arlen_next = ar_beats[7:0] - 8'd1;
        m_axi_arvalid_next = 1'b1;
        rd_addr_next = rd_addr_reg + ({{(AXI_ADDR_WIDTH-9){1'b0}}, ar_beats} << BYTE_BITS);
        rd_beats_left_next = rd_beats_left_reg - {23'd0, ar_beats};
    end

    // ---- AXI write: issue bursts
    if (!m_axi_awvalid_next && wr_beats_left_reg != 32'd0 && wr_cnt_reg != CNT_MAX) begin
        m_axi_awaddr_next = wr_addr_reg;
        m_axi_awlen_next = aw_beats[7:0] - 8'd1;
        m_axi_awvalid_next = 1'b1;
        wr_addr_next = wr_addr_reg + ({{(AXI_ADDR_WIDTH-9){1'b0}}, aw_beats} << BYTE_BITS);
        wr_beats_left_next = wr_beats_left_reg - {23'd0, aw_beats};
    end

    // ---- AXI write: W beats, from s_out or (abort, short packet) with no byte enabled
    if (state_reg == ST_RUN && out_disk_reg && w_data_left_reg != 32'd0 && s_out_fire) begin
        m_axi_wdata_int = out_data_aligned;
        m_axi_wstrb_int = out_beat_bad ? {AXI_STRB_WIDTH{1'b0}} : {AXI_STRB_WIDTH{1'b1}};
        m_axi_wvalid_int = 1'b1;
        w_data_left_next = w_data_left_reg - 32'd1;
    end else if (m_axi_wready_int_reg && w_pend_reg != 0 &&
            (state_reg == ST_ABORT || (state_reg == ST_RUN && out_disk_reg && !out_active_reg))) begin
        m_axi_wvalid_int = 1'b1;
    end
    if (m_axi_wvalid_int) begin
        m_axi_wlast_int = w_burst_beats == 9'd1;
        w_burst_left_next = w_burst_beats - 9'd1;
        if (w_burst_left_reg == 9'd0) begin
            w_addr_next = w_addr_reg + ({{(AXI_ADDR_WIDTH-9){1'b0}}, w_burst_beats} << BYTE_BITS);
            w_beats_left_next = w_beats_left_reg - {23'd0, w_burst_beats};
        end
    end

    // ---- m_in: writable bytes before the status
    if (state_reg == ST_RUN && in_beats_left_reg > 32'd1) begin
        if (in_mode_reg == IN_DISK) begin
            m_axi_rready_int = m_in_tready_int_reg;
            if (rd_fire) begin
                m_in_tdata_int = (rd_err_reg || m_axi_rresp != AXI_RESP_OKAY) ?
                    {DATA_WIDTH{1'b0}} : m_axi_rdata;
                m_in_tvalid_int = 1'b1;
            end
        end else if (m_in_tready_int_reg) begin
            m_in_tdata_int = fill_word;
            m_in_tvalid_int = 1'b1;
        end
        if (m_in_tvalid_int) begin
            in_beats_left_next = in_beats_left_reg - 32'd1;
            if (in_idx_reg != ID_BEATS[ID_IDX_WIDTH-1:0]) begin
                in_idx_next = in_idx_reg + 1'b1;
            end
        end
    end
    if (state_reg == ST_ABORT) begin
        m_axi_rready_int = 1'b1;    // drop what the bursts issued before the abort return
    end
    if (rd_fire) begin
        if (m_axi_rresp != AXI_RESP_OKAY) begin
            rd_err_next = 1'b1;
        end
        if (m_axi_rlast) begin
            rd_cnt_next = rd_cnt_next - 1'b1;
        end
    end
    if (m_axi_bvalid) begin
        if (m_axi_bresp != AXI_RESP_OKAY) begin
            wr_err_next = 1'b1;
        end
        wr_cnt_next = wr_cnt_next - 1'b1;
    end
    if (m_axi_arvalid_next && !(m_axi_arvalid_reg && !m_axi_arready)) begin
        rd_cnt_next = rd_cnt_next + 1'b1;
    end
    if (m_axi_awvalid_next && !(m_axi_awvalid_reg && !m_axi_awready)) begin
        wr_cnt_next = wr_cnt_next + 1'b1;
        w_pend_next = w_pend_next + 1'b1;
    end
    if (m_axi_wvalid_int && m_axi_wlast_int) begin
        w_pend_next = w_pend_next - 1'b1;
    end

    // ---- control
    case (state_reg)
        ST_IDLE: ;
        ST_HEADER: begin
            if (s_out_fire) begin
                hdr_next[out_hdr_idx_reg * HDR_CHUNK +: HDR_CHUNK] = s_out_tdata[HDR_CHUNK-1:0];
                out_hdr_idx_next = out_hdr_idx_reg + 1'b1;
            end
            // on to the checks with the header's last beat
            if (!out_active_reg || out_hdr_idx_reg == HDR_BEATS_IDX ||
                    (s_out_fire && out_hdr_idx_reg == HDR_BEATS_IDX - 1'b1)) begin
                state_next = ST_CHECK;
            end
        end
        ST_CHECK: begin
            // a short, failed or mis-sized header (so far) means the request cannot be trusted
            hdr_bad_next = out_len_reg < HDR_BYTES || out_err_reg;
            if (hdr_type == VIRTIO_BLK_T_OUT) begin
                end_sector_next = {1'b0, hdr_sector} + {42'd0, out_data_len[31:SECTOR_SHIFT]};
            end else begin
                end_sector_next = {1'b0, hdr_sector} + {42'd0, in_data_len[31:SECTOR_SHIFT]};
            end
            state_next = ST_DECIDE;
        end
        ST_DECIDE: begin
            status_next = VIRTIO_BLK_S_OK;
            if (hdr_bad_reg) begin
                status_next = VIRTIO_BLK_S_IOERR;
            end else begin
                case (hdr_type)
                    VIRTIO_BLK_T_IN: begin
                        if (in_ok) begin
                            in_mode_next = IN_DISK;
                            rd_addr_next = disk_addr;
                            rd_beats_left_next = in_data_len >> BYTE_BITS;
                        end else begin
                            status_next = VIRTIO_BLK_S_IOERR;
                        end
                    end
                    VIRTIO_BLK_T_OUT: begin
                        if (out_ok) begin
                            out_disk_next = 1'b1;
                            wr_addr_next = disk_addr;
                            wr_beats_left_next = out_data_len >> BYTE_BITS;
                            w_addr_next = disk_addr;
                            w_beats_left_next = out_data_len >> BYTE_BITS;
                            w_burst_left_next = 9'd0;
                            w_data_left_next = out_data_len >> BYTE_BITS;
                        end else begin
                            status_next = VIRTIO_BLK_S_IOERR;
                        end
                    end
                    VIRTIO_BLK_T_FLUSH: begin
                        // every earlier OUT finished after its write responses
                    end
                    VIRTIO_BLK_T_GET_ID: begin
                        in_mode_next = IN_ID;
                    end
                    default: begin
                        status_next = VIRTIO_BLK_S_UNSUPP;
                    end
                endcase
            end
            state_next = ST_RUN;
        end
        ST_RUN: begin
            if (out_disk_reg && out_early_reg) begin
                wr_beats_left_next = 32'd0;     // the data will not come: no more bursts
            end
            if (in_beats_left_reg <= 32'd1 && !out_active_reg &&
                    rd_beats_left_reg == 32'd0 && rd_cnt_reg == 0 &&
                    wr_beats_left_reg == 32'd0 && wr_cnt_reg == 0 && w_pend_reg == 0) begin
                if (out_err_reg || rd_err_reg || wr_err_reg) begin
                    status_next = VIRTIO_BLK_S_IOERR;
                end
                state_next = in_beats_left_reg == 32'd0 ? ST_IDLE : ST_STATUS;
            end
        end
        ST_STATUS: begin
            if (m_in_tready_int_reg) begin
                m_in_tdata_int = status_word;
                m_in_tkeep_int = status_keep;
                m_in_tlast_int = 1'b1;
                m_in_tvalid_int = 1'b1;
                in_beats_left_next = 32'd0;
                state_next = ST_IDLE;
            end
        end
        ST_ABORT: begin
            if (rd_cnt_reg == 0 && wr_cnt_reg == 0 && w_pend_reg == 0) begin
                state_next = ST_IDLE;
            end
        end
        default: state_next = ST_IDLE;
    endcase

    // a new request: in ST_IDLE, or in ST_STATUS with the last beat of the one before
    if (s_req_valid && s_req_ready) begin
        out_len_next = s_req_out_len;
        in_len_next = s_req_in_len;
        hdr_next = 128'd0;
        out_active_next = s_req_out_len != 32'd0;
        out_beats_left_next = req_out_beats;
        out_last_keep_next = keep_upto(s_req_out_len[BYTE_BITS-1:0] - 1'b1);
        out_hdr_idx_next = 0;
        out_err_next = 1'b0;
        out_early_next = 1'b0;
        out_disk_next = 1'b0;
        in_mode_next = IN_ZERO;
        in_beats_left_next = req_in_beats;
        in_idx_next = 0;
        status_lane_next = s_req_in_len[BYTE_BITS-1:0] - 1'b1;
        rd_err_next = 1'b0;
        wr_err_next = 1'b0;
        state_next = ST_HEADER;
    end

    // abort: forget the streams and stop issuing; bursts issued run to their end
    if (abort && state_reg != ST_IDLE && state_reg != ST_ABORT) begin
        state_next = ST_ABORT;
        out_active_next = 1'b0;
        in_beats_left_next = 32'd0;
        rd_beats_left_next = 32'd0;
        wr_beats_left_next = 32'd0;
        w_data_left_next = 32'd0;
        m_in_tvalid_int = 1'b0;
    end
end

always @(posedge clk) begin
    state_reg <= state_next;

    out_len_reg <= out_len_next;
    in_len_reg <= in_len_next;
    hdr_reg <= hdr_next;
    end_sector_reg <= end_sector_next;
    status_reg <= status_next;
    hdr_bad_reg <= hdr_bad_next;

    out_active_reg <= out_active_next;
    out_beats_left_reg <= out_beats_left_next;
    out_last_keep_reg <= out_last_keep_next;
    out_hdr_idx_reg <= out_hdr_idx_next;
    out_err_reg <= out_err_next;
    out_early_reg <= out_early_next;
    out_disk_reg <= out_disk_next;
    w_data_left_reg <= w_data_left_next;
    saved_reg <= saved_next;

    in_mode_reg <= in_mode_next;
    in_beats_left_reg <= in_beats_left_next;
    in_idx_reg <= in_idx_next;
    status_lane_reg <= status_lane_next;

    rd_addr_reg <= rd_addr_next;
    rd_beats_left_reg <= rd_beats_left_next;
    rd_cnt_reg <= rd_cnt_next;
    rd_err_reg <= rd_err_next;
    m_axi_araddr_reg <= m_axi_araddr_next;
    m_axi_arlen_reg <= m_axi_arlen_next;
    m_axi_arvalid_reg <= m_axi_arvalid_next;

    wr_addr_reg <= wr_addr_next;
    wr_beats_left_reg <= wr_beats_left_next;
    wr_cnt_reg <= wr_cnt_next;
    w_pend_reg <= w_pend_next;
    w_addr_reg <= w_addr_next;
    w_beats_left_reg <= w_beats_left_next;
    w_burst_left_reg <= w_burst_left_next;
    wr_err_reg <= wr_err_next;
    m_axi_awaddr_reg <= m_axi_awaddr_next;
    m_axi_awlen_reg <= m_axi_awlen_next;
    m_axi_awvalid_reg <= m_axi_awvalid_next;

    if (rst) begin
        state_reg <= ST_IDLE;
        out_active_reg <= 1'b0;
        out_disk_reg <= 1'b0;
        w_data_left_reg <= 32'd0;
        in_beats_left_reg <= 32'd0;
        rd_beats_left_reg <= 32'd0;
        rd_cnt_reg <= 0;
        m_axi_arvalid_reg <= 1'b0;
        wr_beats_left_reg <= 32'd0;
        wr_cnt_reg <= 0;
        w_pend_reg <= 0;
        w_burst_left_reg <= 9'd0;
        m_axi_awvalid_reg <= 1'b0;
    end
end

// ---- m_in output register with a skid register: full rate, registered outputs
reg [DATA_WIDTH-1:0] m_in_tdata_reg;
reg [KEEP_WIDTH-1:0] m_in_tkeep_reg;
reg m_in_tvalid_reg, m_in_tvalid_next;
reg m_in_tlast_reg;

reg [DATA_WIDTH-1:0] temp_m_in_tdata_reg;
reg [KEEP_WIDTH-1:0] temp_m_in_tkeep_reg;
reg temp_m_in_tvalid_reg, temp_m_in_tvalid_next;
reg temp_m_in_tlast_reg;

reg store_in_int_to_output;
reg store_in_int_to_temp;
reg store_in_temp_to_output;

wire m_in_tready_eff = m_in_tready && !abort;

assign m_in_tdata = m_in_tdata_reg;
assign m_in_tkeep = m_in_tkeep_reg;
assign m_in_tvalid = m_in_tvalid_reg && !abort;
assign m_in_tlast = m_in_tlast_reg;

// the internal side may send next cycle if the output or the skid register will be free
assign m_in_tready_int_early = m_in_tready_eff ||
    (!temp_m_in_tvalid_reg && (!m_in_tvalid_reg || !m_in_tvalid_int));

always @* begin
    m_in_tvalid_next = m_in_tvalid_reg;
    temp_m_in_tvalid_next = temp_m_in_tvalid_reg;
    store_in_int_to_output = 1'b0;
    store_in_int_to_temp = 1'b0;
    store_in_temp_to_output = 1'b0;

    if (m_in_tready_int_reg) begin
        if (m_in_tready_eff || !m_in_tvalid_reg) begin
            m_in_tvalid_next = m_in_tvalid_int;
            store_in_int_to_output = 1'b1;
        end else begin
            temp_m_in_tvalid_next = m_in_tvalid_int;
            store_in_int_to_temp = 1'b1;
        end
    end else if (m_in_tready_eff) begin
        m_in_tvalid_next = temp_m_in_tvalid_reg;
        temp_m_in_tvalid_next = 1'b0;
        store_in_temp_to_output = 1'b1;
    end

    // abort: the writable packet is abandoned, beats waiting here included (also a
    // status beat left behind when the request itself is over)
    if (abort || state_reg == ST_ABORT) begin
        m_in_tvalid_next = 1'b0;
        temp_m_in_tvalid_next = 1'b0;
    end
end

always @(posedge clk) begin
    m_in_tvalid_reg <= m_in_tvalid_next;
    m_in_tready_int_reg <= m_in_tready_int_early;
    temp_m_in_tvalid_reg <= temp_m_in_tvalid_next;

    if (store_in_int_to_output) begin
        m_in_tdata_reg <= m_in_tdata_int;
        m_in_tkeep_reg <= m_in_tkeep_int;
        m_in_tlast_reg <= m_in_tlast_int;
    end else if (store_in_temp_to_output) begin
        m_in_tdata_reg <= temp_m_in_tdata_reg;
        m_in_tkeep_reg <= temp_m_in_tkeep_reg;
        m_in_tlast_reg <= temp_m_in_tlast_reg;
    end

    if (store_in_int_to_temp) begin
        temp_m_in_tdata_reg <= m_in_tdata_int;
        temp_m_in_tkeep_reg <= m_in_tkeep_int;
        temp_m_in_tlast_reg <= m_in_tlast_int;
    end

    if (rst) begin
        m_in_tvalid_reg <= 1'b0;
        m_in_tready_int_reg <= 1'b0;
        temp_m_in_tvalid_reg <= 1'b0;
    end
end

// ---- AXI W output register with a skid register (never cleared: issued bursts finish)
reg [AXI_DATA_WIDTH-1:0] m_axi_wdata_reg;
reg [AXI_STRB_WIDTH-1:0] m_axi_wstrb_reg;
reg m_axi_wlast_reg;
reg m_axi_wvalid_reg, m_axi_wvalid_next;

reg [AXI_DATA_WIDTH-1:0] temp_m_axi_wdata_reg;
reg [AXI_STRB_WIDTH-1:0] temp_m_axi_wstrb_reg;
reg temp_m_axi_wlast_reg;
reg temp_m_axi_wvalid_reg, temp_m_axi_wvalid_next;

reg store_w_int_to_output;
reg store_w_int_to_temp;
reg store_w_temp_to_output;

assign m_axi_wdata = m_axi_wdata_reg;
assign m_axi_wstrb = m_axi_wstrb_reg;
assign m_axi_wlast = m_axi_wlast_reg;
assign m_axi_wvalid = m_axi_wvalid_reg;

assign m_axi_wready_int_early = m_axi_wready ||
    (!temp_m_axi_wvalid_reg && (!m_axi_wvalid_reg || !m_axi_wvalid_int));

always @* begin
    m_axi_wvalid_next = m_axi_wvalid_reg;
    temp_m_axi_wvalid_next = temp_m_axi_wvalid_reg;
    store_w_int_to_output = 1'b0;
    store_w_int_to_temp = 1'b0;
    store_w_temp_to_output = 1'b0;

    if (m_axi_wready_int_reg) begin
        if (m_axi_wready || !m_axi_wvalid_reg) begin
            m_axi_wvalid_next = m_axi_wvalid_int;
            store_w_int_to_output = 1'b1;
        end else begin
            temp_m_axi_wvalid_next = m_axi_wvalid_int;
            store_w_int_to_temp = 1'b1;
        end
    end else if (m_axi_wready) begin
        m_axi_wvalid_next = temp_m_axi_wvalid_reg;
        temp_m_axi_wvalid_next = 1'b0;
        store_w_temp_to_output = 1'b1;
    end
end

always @(posedge clk) begin
    m_axi_wvalid_reg <= m_axi_wvalid_next;
    m_axi_wready_int_reg <= m_axi_wready_int_early;
    temp_m_axi_wvalid_reg <= temp_m_axi_wvalid_next;

    if (store_w_int_to_output) begin
        m_axi_wdata_reg <= m_axi_wdata_int;
        m_axi_wstrb_reg <= m_axi_wstrb_int;
        m_axi_wlast_reg <= m_axi_wlast_int;
    end else if (store_w_temp_to_output) begin
        m_axi_wdata_reg <= temp_m_axi_wdata_reg;
        m_axi_wstrb_reg <= temp_m_axi_wstrb_reg;
        m_axi_wlast_reg <= temp_m_axi_wlast_reg;
    end

    if (store_w_int_to_temp) begin
        temp_m_axi_wdata_reg <= m_axi_wdata_int;
        temp_m_axi_wstrb_reg <= m_axi_wstrb_int;
        temp_m_axi_wlast_reg <= m_axi_wlast_int;
    end

    if (rst) begin
        m_axi_wvalid_reg <= 1'b0;
        m_axi_wready_int_reg <= 1'b0;
        temp_m_axi_wvalid_reg <= 1'b0;
    end
end

assign idle = state_reg == ST_IDLE && !m_in_tvalid_reg && !temp_m_in_tvalid_reg &&
    rd_cnt_reg == 0 && wr_cnt_reg == 0;

endmodule

`resetall
