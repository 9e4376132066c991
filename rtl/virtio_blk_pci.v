// SPDX-License-Identifier: Apache-2.0

`resetall
`timescale 1ns / 1ps
`default_nettype none

/*
 * virtio-blk device on PCI (modern, non-transitional): PCI device 0x1AF4:0x1042.
 * Top level with the vendor-neutral four-stream TLP port (docs/tlp-port.md).
 * This level carries the virtio PCI transport and the virtio-blk config
 * layout; the ring engine and the block back end attach to the doorbell,
 * quiesce and needs-reset hooks.
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
    // BAR0 prefetchable (placed above 4 GiB by most hosts)
    parameter BAR0_PREFETCHABLE = 1,
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
    output wire [QUEUE_INDEX_WIDTH-1:0]  notify_queue
);

`include "virtio_pci_defs.vh"

// PCI class: mass storage, other
localparam [23:0] CLASS_CODE = 24'h018000;
// struct virtio_blk_config up to and including unused1 (v1.3 without secure erase and zoned)
localparam DEVICE_CFG_LENGTH = 60;

localparam [63:0] DEVICE_FEATURES =
    (64'd1 << VIRTIO_F_VERSION_1) |
    (64'd1 << VIRTIO_F_ACCESS_PLATFORM) |
    (64'd1 << VIRTIO_F_ORDER_PLATFORM) |
    ((RING_RESET != 0 ? 64'd1 : 64'd0) << VIRTIO_F_RING_RESET) |
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
    .QUEUE_INDEX_WIDTH(QUEUE_INDEX_WIDTH)
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
    .dev_needs_reset(1'b0),
    .dev_quiesced(1'b1),
    .driver_ok(driver_ok),
    .notify_valid(notify_valid),
    .notify_queue(notify_queue)
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
    .cfg_changed(dev_cfg_changed)
);

endmodule

`resetall
