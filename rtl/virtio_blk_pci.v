// SPDX-License-Identifier: Apache-2.0

`resetall
`timescale 1ns / 1ps
`default_nettype none

/*
 * virtio-blk device on PCI (modern, non-transitional): PCI device 0x1AF4:0x1042.
 * Top level with the vendor-neutral four-stream TLP port (docs/tlp-port.md) and
 * an AXI4 master port to the memory that holds the disk (sector s at byte
 * address s * 512). The virtio PCI function (transport, ring engine, DMA) feeds
 * the virtio-blk back end one descriptor chain at a time.
 */
module virtio_blk_pci #
(
    // TLP data width (64, 128 or 256)
    parameter DATA_WIDTH = 64,
    // TLP strobe width (one bit per dword)
    parameter STRB_WIDTH = DATA_WIDTH/32,
    // number of request queues
    parameter NUM_QUEUES = 1,
    // maximum queue size (power of two, up to 32768)
    parameter QUEUE_SIZE_MAX = 256,
    // MSI-X vectors: one for config changes plus one per queue
    parameter MSIX_VECTORS = NUM_QUEUES + 1,
    // disk capacity in 512-byte sectors
    parameter [63:0] CAPACITY = 64'd2048,
    // maximum data segments per request (config seg_max)
    parameter [31:0] SEG_MAX = 32'd64,
    // logical block size (config blk_size)
    parameter [31:0] BLK_SIZE = 32'd512,
    // offer VIRTIO_BLK_F_RO (the disk refuses writes)
    parameter READ_ONLY = 0,
    // offer VIRTIO_F_RING_RESET (per-queue reset through queue_reset)
    parameter RING_RESET = 1,
    // offer VIRTIO_F_NOTIFICATION_DATA (32-bit doorbells carrying the driver's avail idx)
    parameter NOTIFICATION_DATA = 1,
    // BAR0 prefetchable (placed above 4 GiB by most hosts)
    parameter BAR0_PREFETCHABLE = 1,
    // DMA read tags (outstanding MRd TLPs)
    parameter DMA_TAGS = 32,
    // DMA read completion timeout, in clock cycles
    parameter CPL_TIMEOUT = 65536,
    // AXI4 disk port: address width (the disk holds at most 2^AXI_ADDR_WIDTH bytes) and id width
    parameter AXI_ADDR_WIDTH = 32,
    parameter AXI_ID_WIDTH = 4,
    // the string GET_ID returns (20 bytes, first character in the low byte)
    parameter [159:0] ID_STRING = 160'h0000000000616770662d6b6c622d6f6974726976,  // "virtio-blk-fpga"
    // queue index width
    parameter QUEUE_INDEX_WIDTH = NUM_QUEUES > 1 ? $clog2(NUM_QUEUES) : 1
)
(
    input  wire                          clk,
    input  wire                          rst,

    /*
     * Requests from the host (config and BAR0 accesses)
     */
    input  wire [DATA_WIDTH-1:0]         rx_req_tlp_data,
    input  wire [STRB_WIDTH-1:0]         rx_req_tlp_strb,
    input  wire [127:0]                  rx_req_tlp_hdr,
    input  wire                          rx_req_tlp_valid,
    input  wire                          rx_req_tlp_sop,
    input  wire                          rx_req_tlp_eop,
    output wire                          rx_req_tlp_ready,

    /*
     * Completions to the host
     */
    output wire [DATA_WIDTH-1:0]         tx_cpl_tlp_data,
    output wire [STRB_WIDTH-1:0]         tx_cpl_tlp_strb,
    output wire [127:0]                  tx_cpl_tlp_hdr,
    output wire                          tx_cpl_tlp_valid,
    output wire                          tx_cpl_tlp_sop,
    output wire                          tx_cpl_tlp_eop,
    input  wire                          tx_cpl_tlp_ready,

    /*
     * Requests to the host (DMA and MSI-X writes, one ordered stream)
     */
    output wire [DATA_WIDTH-1:0]         tx_req_tlp_data,
    output wire [STRB_WIDTH-1:0]         tx_req_tlp_strb,
    output wire [127:0]                  tx_req_tlp_hdr,
    output wire                          tx_req_tlp_valid,
    output wire                          tx_req_tlp_sop,
    output wire                          tx_req_tlp_eop,
    input  wire                          tx_req_tlp_ready,

    /*
     * Completions from the host (for DMA reads)
     */
    input  wire [DATA_WIDTH-1:0]         rx_cpl_tlp_data,
    input  wire [STRB_WIDTH-1:0]         rx_cpl_tlp_strb,
    input  wire [127:0]                  rx_cpl_tlp_hdr,
    input  wire                          rx_cpl_tlp_valid,
    input  wire                          rx_cpl_tlp_sop,
    input  wire                          rx_cpl_tlp_eop,
    output wire                          rx_cpl_tlp_ready,

    /*
     * Legacy interrupt request (level, INTA#)
     */
    output wire                          intx_assert,

    /*
     * Resize: a new capacity in sectors (config change notification)
     */
    input  wire                          capacity_valid,
    input  wire [63:0]                   capacity,

    /*
     * Status and doorbells
     */
    output wire                          driver_ok,
    output wire                          notify_valid,
    output wire [QUEUE_INDEX_WIDTH-1:0]  notify_queue,
    output wire                          notify_data,
    output wire [15:0]                   notify_idx,

    /*
     * AXI4 master to the disk memory
     */
    output wire [AXI_ID_WIDTH-1:0]       m_axi_awid,
    output wire [AXI_ADDR_WIDTH-1:0]     m_axi_awaddr,
    output wire [7:0]                    m_axi_awlen,
    output wire [2:0]                    m_axi_awsize,
    output wire [1:0]                    m_axi_awburst,
    output wire                          m_axi_awlock,
    output wire [3:0]                    m_axi_awcache,
    output wire [2:0]                    m_axi_awprot,
    output wire                          m_axi_awvalid,
    input  wire                          m_axi_awready,
    output wire [DATA_WIDTH-1:0]         m_axi_wdata,
    output wire [DATA_WIDTH/8-1:0]       m_axi_wstrb,
    output wire                          m_axi_wlast,
    output wire                          m_axi_wvalid,
    input  wire                          m_axi_wready,
    input  wire [AXI_ID_WIDTH-1:0]       m_axi_bid,
    input  wire [1:0]                    m_axi_bresp,
    input  wire                          m_axi_bvalid,
    output wire                          m_axi_bready,
    output wire [AXI_ID_WIDTH-1:0]       m_axi_arid,
    output wire [AXI_ADDR_WIDTH-1:0]     m_axi_araddr,
    output wire [7:0]                    m_axi_arlen,
    output wire [2:0]                    m_axi_arsize,
    output wire [1:0]                    m_axi_arburst,
    output wire                          m_axi_arlock,
    output wire [3:0]                    m_axi_arcache,
    output wire [2:0]                    m_axi_arprot,
    output wire                          m_axi_arvalid,
    input  wire                          m_axi_arready,
    input  wire [AXI_ID_WIDTH-1:0]       m_axi_rid,
    input  wire [DATA_WIDTH-1:0]         m_axi_rdata,
    input  wire [1:0]                    m_axi_rresp,
    input  wire                          m_axi_rlast,
    input  wire                          m_axi_rvalid,
    output wire                          m_axi_rready
);

`include "virtio_pci_defs.vh"

// PCI class: mass storage, other
localparam [23:0] CLASS_CODE = 24'h018000;
// struct virtio_blk_config up to and including unused1 (v1.3 without secure erase and zoned)
localparam DEVICE_CFG_LENGTH = 60;

localparam [63:0] DEVICE_FEATURES =
    (64'd1 << VIRTIO_RING_F_INDIRECT_DESC) |
    (64'd1 << VIRTIO_RING_F_EVENT_IDX) |
    (64'd1 << VIRTIO_F_VERSION_1) |
    (64'd1 << VIRTIO_F_ACCESS_PLATFORM) |
    (64'd1 << VIRTIO_F_ORDER_PLATFORM) |
    ((RING_RESET != 0 ? 64'd1 : 64'd0) << VIRTIO_F_RING_RESET) |
    ((NOTIFICATION_DATA != 0 ? 64'd1 : 64'd0) << VIRTIO_F_NOTIFICATION_DATA) |
    (64'd1 << VIRTIO_BLK_F_SEG_MAX) |
    (64'd1 << VIRTIO_BLK_F_BLK_SIZE) |
    (64'd1 << VIRTIO_BLK_F_FLUSH) |
    ((READ_ONLY != 0 ? 64'd1 : 64'd0) << VIRTIO_BLK_F_RO) |
    ((NUM_QUEUES > 1 ? 64'd1 : 64'd0) << VIRTIO_BLK_F_MQ);

wire [9:0]  dev_cfg_addr;
wire [3:0]  dev_cfg_be;
wire [31:0] dev_cfg_wdata;
wire        dev_cfg_wr;
wire [31:0] dev_cfg_rdata;
wire        dev_cfg_changed;
wire [63:0] capacity_current;

localparam KEEP_WIDTH = DATA_WIDTH/8;
wire        be_req_valid, be_req_ready;
wire [31:0] be_req_out_len, be_req_in_len;
wire [DATA_WIDTH-1:0] be_out_tdata, be_in_tdata;
wire [KEEP_WIDTH-1:0] be_out_tkeep, be_in_tkeep;
wire        be_out_tvalid, be_out_tready, be_out_tlast, be_out_tuser;
wire        be_in_tvalid, be_in_tready, be_in_tlast;
wire        be_abort, be_idle;

virtio_pci_func #(
    .DATA_WIDTH(DATA_WIDTH),
    .STRB_WIDTH(STRB_WIDTH),
    .VIRTIO_DEVICE_ID(VIRTIO_ID_BLOCK),
    .CLASS_CODE(CLASS_CODE),
    .SUBSYSTEM_ID(16'h1100),
    .DEVICE_FEATURES(DEVICE_FEATURES),
    .NUM_QUEUES(NUM_QUEUES),
    .QUEUE_SIZE_MAX(QUEUE_SIZE_MAX),
    .MSIX_VECTORS(MSIX_VECTORS),
    .DEVICE_CFG_LENGTH(DEVICE_CFG_LENGTH),
    .BAR0_PREFETCHABLE(BAR0_PREFETCHABLE),
    .QUEUE_INDEX_WIDTH(QUEUE_INDEX_WIDTH),
    .DMA_TAGS(DMA_TAGS),
    .MAX_CHAIN_SEGS(SEG_MAX + 2),
    .CPL_TIMEOUT(CPL_TIMEOUT)
)
u_func (
    .clk(clk),
    .rst(rst),
    .rx_req_tlp_data(rx_req_tlp_data),
    .rx_req_tlp_strb(rx_req_tlp_strb),
    .rx_req_tlp_hdr(rx_req_tlp_hdr),
    .rx_req_tlp_valid(rx_req_tlp_valid),
    .rx_req_tlp_sop(rx_req_tlp_sop),
    .rx_req_tlp_eop(rx_req_tlp_eop),
    .rx_req_tlp_ready(rx_req_tlp_ready),
    .tx_cpl_tlp_data(tx_cpl_tlp_data),
    .tx_cpl_tlp_strb(tx_cpl_tlp_strb),
    .tx_cpl_tlp_hdr(tx_cpl_tlp_hdr),
    .tx_cpl_tlp_valid(tx_cpl_tlp_valid),
    .tx_cpl_tlp_sop(tx_cpl_tlp_sop),
    .tx_cpl_tlp_eop(tx_cpl_tlp_eop),
    .tx_cpl_tlp_ready(tx_cpl_tlp_ready),
    .tx_req_tlp_data(tx_req_tlp_data),
    .tx_req_tlp_strb(tx_req_tlp_strb),
    .tx_req_tlp_hdr(tx_req_tlp_hdr),
    .tx_req_tlp_valid(tx_req_tlp_valid),
    .tx_req_tlp_sop(tx_req_tlp_sop),
    .tx_req_tlp_eop(tx_req_tlp_eop),
    .tx_req_tlp_ready(tx_req_tlp_ready),
    .rx_cpl_tlp_data(rx_cpl_tlp_data),
    .rx_cpl_tlp_strb(rx_cpl_tlp_strb),
    .rx_cpl_tlp_hdr(rx_cpl_tlp_hdr),
    .rx_cpl_tlp_valid(rx_cpl_tlp_valid),
    .rx_cpl_tlp_sop(rx_cpl_tlp_sop),
    .rx_cpl_tlp_eop(rx_cpl_tlp_eop),
    .rx_cpl_tlp_ready(rx_cpl_tlp_ready),
    .intx_assert(intx_assert),
    .dev_cfg_addr(dev_cfg_addr),
    .dev_cfg_be(dev_cfg_be),
    .dev_cfg_wdata(dev_cfg_wdata),
    .dev_cfg_wr(dev_cfg_wr),
    .dev_cfg_rdata(dev_cfg_rdata),
    .dev_cfg_changed(dev_cfg_changed),
    .m_be_req_valid(be_req_valid),
    .m_be_req_ready(be_req_ready),
    .m_be_req_out_len(be_req_out_len),
    .m_be_req_in_len(be_req_in_len),
    .m_be_out_tdata(be_out_tdata),
    .m_be_out_tkeep(be_out_tkeep),
    .m_be_out_tvalid(be_out_tvalid),
    .m_be_out_tready(be_out_tready),
    .m_be_out_tlast(be_out_tlast),
    .m_be_out_tuser(be_out_tuser),
    .s_be_in_tdata(be_in_tdata),
    .s_be_in_tkeep(be_in_tkeep),
    .s_be_in_tvalid(be_in_tvalid),
    .s_be_in_tready(be_in_tready),
    .s_be_in_tlast(be_in_tlast),
    .be_abort(be_abort),
    .be_idle(be_idle),
    .driver_ok(driver_ok),
    .notify_valid(notify_valid),
    .notify_queue(notify_queue),
    .notify_data(notify_data),
    .notify_idx(notify_idx)
);

virtio_blk_cfg #(
    .CAPACITY(CAPACITY),
    .SEG_MAX(SEG_MAX),
    .BLK_SIZE(BLK_SIZE),
    .NUM_QUEUES(NUM_QUEUES[15:0])
)
u_blk_cfg (
    .clk(clk),
    .rst(rst),
    .reg_addr(dev_cfg_addr),
    .reg_rdata(dev_cfg_rdata),
    .capacity_valid(capacity_valid),
    .capacity(capacity),
    .capacity_current(capacity_current),
    .cfg_changed(dev_cfg_changed)
);

virtio_blk_backend #(
    .DATA_WIDTH(DATA_WIDTH),
    .KEEP_WIDTH(KEEP_WIDTH),
    .AXI_DATA_WIDTH(DATA_WIDTH),
    .AXI_ADDR_WIDTH(AXI_ADDR_WIDTH),
    .AXI_ID_WIDTH(AXI_ID_WIDTH),
    .READ_ONLY(READ_ONLY),
    .ID_STRING(ID_STRING)
)
u_backend (
    .clk(clk),
    .rst(rst),
    .s_req_valid(be_req_valid),
    .s_req_ready(be_req_ready),
    .s_req_out_len(be_req_out_len),
    .s_req_in_len(be_req_in_len),
    .s_out_tdata(be_out_tdata),
    .s_out_tkeep(be_out_tkeep),
    .s_out_tvalid(be_out_tvalid),
    .s_out_tready(be_out_tready),
    .s_out_tlast(be_out_tlast),
    .s_out_tuser(be_out_tuser),
    .m_in_tdata(be_in_tdata),
    .m_in_tkeep(be_in_tkeep),
    .m_in_tvalid(be_in_tvalid),
    .m_in_tready(be_in_tready),
    .m_in_tlast(be_in_tlast),
    .capacity(capacity_current),
    .abort(be_abort),
    .idle(be_idle),
    .m_axi_awid(m_axi_awid),
    .m_axi_awaddr(m_axi_awaddr),
    .m_axi_awlen(m_axi_awlen),
    .m_axi_awsize(m_axi_awsize),
    .m_axi_awburst(m_axi_awburst),
    .m_axi_awlock(m_axi_awlock),
    .m_axi_awcache(m_axi_awcache),
    .m_axi_awprot(m_axi_awprot),
    .m_axi_awvalid(m_axi_awvalid),
    .m_axi_awready(m_axi_awready),
    .m_axi_wdata(m_axi_wdata),
    .m_axi_wstrb(m_axi_wstrb),
    .m_axi_wlast(m_axi_wlast),
    .m_axi_wvalid(m_axi_wvalid),
    .m_axi_wready(m_axi_wready),
    .m_axi_bid(m_axi_bid),
    .m_axi_bresp(m_axi_bresp),
    .m_axi_bvalid(m_axi_bvalid),
    .m_axi_bready(m_axi_bready),
    .m_axi_arid(m_axi_arid),
    .m_axi_araddr(m_axi_araddr),
    .m_axi_arlen(m_axi_arlen),
    .m_axi_arsize(m_axi_arsize),
    .m_axi_arburst(m_axi_arburst),
    .m_axi_arlock(m_axi_arlock),
    .m_axi_arcache(m_axi_arcache),
    .m_axi_arprot(m_axi_arprot),
    .m_axi_arvalid(m_axi_arvalid),
    .m_axi_arready(m_axi_arready),
    .m_axi_rid(m_axi_rid),
    .m_axi_rdata(m_axi_rdata),
    .m_axi_rresp(m_axi_rresp),
    .m_axi_rlast(m_axi_rlast),
    .m_axi_rvalid(m_axi_rvalid),
    .m_axi_rready(m_axi_rready)
);

endmodule

`resetall
