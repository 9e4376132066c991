// SPDX-License-Identifier: Apache-2.0

`resetall
`timescale 1ns / 1ps
`default_nettype none

/*
 * A virtio-over-PCI function without its device type: configuration space,
 * BAR0 decode (common config, notify, ISR, device config, MSI-X table and PBA,
 * one 4 KiB page each), the request completer, interrupt routing (MSI-X or
 * INTx + ISR), the split-ring engine with its DMA read and write engines, and
 * the hooks a device type attaches to: the device config register port and
 * the back-end request and byte streams (docs/ring-engine.md).
 */
module virtio_pci_func #
(
    // TLP data width (64, 128 or 256)
    parameter DATA_WIDTH = 64,
    // TLP strobe width (one bit per dword)
    parameter STRB_WIDTH = DATA_WIDTH/32,
    // virtio device type (virtio_ids.h)
    parameter VIRTIO_DEVICE_ID = 2,
    // PCI class code
    parameter [23:0] CLASS_CODE = 24'h010000,
    // PCI subsystem id (>= 0x40)
    parameter [15:0] SUBSYSTEM_ID = 16'h1100,
    // feature bits offered
    parameter [63:0] DEVICE_FEATURES = 64'h0000_0001_0000_0000,
    // number of virtqueues
    parameter NUM_QUEUES = 1,
    // maximum queue size (power of two)
    parameter QUEUE_SIZE_MAX = 256,
    // number of MSI-X vectors
    parameter MSIX_VECTORS = NUM_QUEUES + 1,
    // device config structure length in bytes
    parameter DEVICE_CFG_LENGTH = 64,
    // BAR0 prefetchable
    parameter BAR0_PREFETCHABLE = 1,
    // queue index width
    parameter QUEUE_INDEX_WIDTH = NUM_QUEUES > 1 ? $clog2(NUM_QUEUES) : 1,
    // byte enables of the back-end streams
    parameter KEEP_WIDTH = DATA_WIDTH/8,
    // DMA read tags (outstanding MRd TLPs)
    parameter DMA_TAGS = 16,
    // longest descriptor chain accepted, in data-carrying descriptors
    parameter MAX_CHAIN_SEGS = 130,
    // DMA read completion timeout, in clock cycles
    parameter CPL_TIMEOUT = 65536
)
(
    input  wire                          clk,
    input  wire                          rst,

    /*
     * TLP port (see docs/tlp-port.md)
     */
    input  wire [DATA_WIDTH-1:0]         rx_req_tlp_data,
    input  wire [STRB_WIDTH-1:0]         rx_req_tlp_strb,
    input  wire [127:0]                  rx_req_tlp_hdr,
    input  wire                          rx_req_tlp_valid,
    input  wire                          rx_req_tlp_sop,
    input  wire                          rx_req_tlp_eop,
    output wire                          rx_req_tlp_ready,

    output wire [DATA_WIDTH-1:0]         tx_cpl_tlp_data,
    output wire [STRB_WIDTH-1:0]         tx_cpl_tlp_strb,
    output wire [127:0]                  tx_cpl_tlp_hdr,
    output wire                          tx_cpl_tlp_valid,
    output wire                          tx_cpl_tlp_sop,
    output wire                          tx_cpl_tlp_eop,
    input  wire                          tx_cpl_tlp_ready,

    output wire [DATA_WIDTH-1:0]         tx_req_tlp_data,
    output wire [STRB_WIDTH-1:0]         tx_req_tlp_strb,
    output wire [127:0]                  tx_req_tlp_hdr,
    output wire                          tx_req_tlp_valid,
    output wire                          tx_req_tlp_sop,
    output wire                          tx_req_tlp_eop,
    input  wire                          tx_req_tlp_ready,

    input  wire [DATA_WIDTH-1:0]         rx_cpl_tlp_data,
    input  wire [STRB_WIDTH-1:0]         rx_cpl_tlp_strb,
    input  wire [127:0]                  rx_cpl_tlp_hdr,
    input  wire                          rx_cpl_tlp_valid,
    input  wire                          rx_cpl_tlp_sop,
    input  wire                          rx_cpl_tlp_eop,
    output wire                          rx_cpl_tlp_ready,

    /*
     * Legacy interrupt: level request for INTA# (a hard IP turns it into Assert/Deassert_INTA)
     */
    output wire                          intx_assert,

    /*
     * Device config register port (device-specific structure, one dword)
     */
    output wire [9:0]                    dev_cfg_addr,
    output wire [3:0]                    dev_cfg_be,
    output wire [31:0]                   dev_cfg_wdata,
    output wire                          dev_cfg_wr,
    input  wire [31:0]                   dev_cfg_rdata,
    input  wire                          dev_cfg_changed,

    /*
     * Back end: one request per descriptor chain, its readable bytes out, its writable bytes in
     */
    output wire                          m_be_req_valid,
    input  wire                          m_be_req_ready,
    output wire [31:0]                   m_be_req_out_len,
    output wire [31:0]                   m_be_req_in_len,
    output wire [DATA_WIDTH-1:0]         m_be_out_tdata,
    output wire [KEEP_WIDTH-1:0]         m_be_out_tkeep,
    output wire                          m_be_out_tvalid,
    input  wire                          m_be_out_tready,
    output wire                          m_be_out_tlast,
    output wire                          m_be_out_tuser,
    input  wire [DATA_WIDTH-1:0]         s_be_in_tdata,
    input  wire [KEEP_WIDTH-1:0]         s_be_in_tkeep,
    input  wire                          s_be_in_tvalid,
    output wire                          s_be_in_tready,
    input  wire                          s_be_in_tlast,
    output wire                          be_abort,
    input  wire                          be_idle,

    /*
     * Status
     */
    output wire                          driver_ok,
    output wire                          notify_valid,
    output wire [QUEUE_INDEX_WIDTH-1:0]  notify_queue,
    output wire                          notify_data,
    output wire [15:0]                   notify_idx
);

`include "virtio_pci_defs.vh"

// ---- register ports
wire [3:0]  reg_be;
wire [31:0] reg_wdata;
wire [9:0]  cfg_reg_addr;
wire        cfg_reg_wr;
wire [31:0] cfg_reg_rdata;
wire [BAR0_APERTURE-3:0] bar_reg_addr;
wire        bar_reg_wr;
wire        bar_reg_rd;
reg  [31:0] bar_reg_rdata;

// ---- function state
wire        cmd_mem_enable;
wire        cmd_bus_master;
wire        cmd_intx_disable;
wire [63:BAR0_APERTURE] bar0_addr;
wire        msix_enable;
wire        msix_function_mask;
wire [2:0]  max_payload_size;
wire [2:0]  max_read_request_size;
wire [7:0]  pcicfg_bar;
wire [31:0] pcicfg_offset;
wire [31:0] pcicfg_length;
wire [7:0]  bus_num;
wire [4:0]  device_num;
wire        intx_status;
wire        msix_req_valid;
wire [10:0] msix_req_vector;

// ---- BAR0 decode: one 4 KiB page per structure
wire [2:0] bar_page = bar_reg_addr[BAR0_APERTURE-3:10];
wire [9:0] bar_page_addr = bar_reg_addr[9:0];
wire common_sel = bar_page == BAR0_PAGE_COMMON;
wire notify_sel = bar_page == BAR0_PAGE_NOTIFY;
wire isr_sel = bar_page == BAR0_PAGE_ISR;
wire device_sel = bar_page == BAR0_PAGE_DEVICE;
wire table_sel = bar_page == BAR0_PAGE_MSIX_TABLE;
wire pba_sel = bar_page == BAR0_PAGE_MSIX_PBA;

wire [31:0] common_rdata;
wire [31:0] msix_rdata;

// ---- transport <-> ring engine
wire [63:0] driver_features;
wire        dev_reset;
wire [NUM_QUEUES-1:0] queue_reset_active;
wire        queue_irq_valid;
wire [QUEUE_INDEX_WIDTH-1:0] queue_irq_queue;
wire [QUEUE_INDEX_WIDTH-1:0] q_a_queue, q_b_queue;
wire [15:0] q_a_size, q_b_size;
wire [63:0] q_a_desc, q_a_driver, q_a_device, q_b_driver, q_b_device;
wire        q_a_enable;
wire        engine_needs_reset;
wire        engine_quiesced;
// a reset is complete only once every TLP the engine and the MSI-X block produced has left on
// tx_req: a posted write still waiting in the arbiter must not be passed by the completion that
// reads device_status 0 (completions may not pass posted requests)
wire        tx_req_drained;
wire        dev_quiesced = engine_quiesced && tx_req_drained;

// ---- ring engine <-> DMA
localparam DEST_WIDTH = 2;
wire [63:0] rd_req_addr;
wire [12:0] rd_req_len;
wire [DEST_WIDTH-1:0] rd_req_dest;
wire        rd_req_last, rd_req_valid, rd_req_ready;
wire [DATA_WIDTH-1:0] rd_rsp_tdata;
wire [KEEP_WIDTH-1:0] rd_rsp_tkeep;
wire        rd_rsp_tvalid, rd_rsp_tready, rd_rsp_tlast, rd_rsp_tuser;
wire [DEST_WIDTH-1:0] rd_rsp_tdest;
wire        rd_idle, rd_error;
wire [63:0] wr_req_addr;
wire [12:0] wr_req_len;
wire        wr_req_valid, wr_req_ready;
wire        wr_done, wr_idle, wr_flush;
wire [63:0] iwr_req_addr;
wire [3:0]  iwr_req_len;
wire [63:0] iwr_req_data;
wire        iwr_req_valid, iwr_req_ready;
wire        iwr_done, iwr_idle;

// ---- TLP sources merged into tx_req
wire [DATA_WIDTH-1:0] tx_rd_tlp_data, tx_wr_tlp_data, tx_imm_tlp_data, tx_msg_tlp_data;
wire [STRB_WIDTH-1:0] tx_rd_tlp_strb, tx_wr_tlp_strb, tx_imm_tlp_strb, tx_msg_tlp_strb;
wire [127:0] tx_rd_tlp_hdr, tx_wr_tlp_hdr, tx_imm_tlp_hdr, tx_msg_tlp_hdr;
wire tx_rd_tlp_valid, tx_rd_tlp_sop, tx_rd_tlp_eop, tx_rd_tlp_ready;
wire tx_wr_tlp_valid, tx_wr_tlp_sop, tx_wr_tlp_eop, tx_wr_tlp_ready;
wire tx_imm_tlp_valid, tx_imm_tlp_sop, tx_imm_tlp_eop, tx_imm_tlp_ready;
wire tx_msg_tlp_valid, tx_msg_tlp_sop, tx_msg_tlp_eop, tx_msg_tlp_ready;
wire [15:0] requester_id = {bus_num, device_num, 3'b000};
assign tx_req_drained = !tx_req_tlp_valid && !tx_rd_tlp_valid && !tx_wr_tlp_valid && !tx_imm_tlp_valid &&
                        !tx_msg_tlp_valid;

always @* begin
    bar_reg_rdata = 32'd0;
    if (common_sel || isr_sel)
        bar_reg_rdata = common_rdata;
    else if (device_sel)
        bar_reg_rdata = dev_cfg_rdata;
    else if (table_sel || pba_sel)
        bar_reg_rdata = msix_rdata;
end

assign dev_cfg_addr = bar_page_addr;
assign dev_cfg_be = reg_be;
assign dev_cfg_wdata = reg_wdata;
assign dev_cfg_wr = bar_reg_wr && device_sel;
wire dev_cfg_read = bar_reg_rd && device_sel;


virtio_pci_completer #(
    .DATA_WIDTH(DATA_WIDTH),
    .STRB_WIDTH(STRB_WIDTH)
)
u_completer (
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
    .reg_be(reg_be),
    .reg_wdata(reg_wdata),
    .cfg_reg_addr(cfg_reg_addr),
    .cfg_reg_wr(cfg_reg_wr),
    .cfg_reg_rdata(cfg_reg_rdata),
    .bar_reg_addr(bar_reg_addr),
    .bar_reg_wr(bar_reg_wr),
    .bar_reg_rd(bar_reg_rd),
    .bar_reg_rdata(bar_reg_rdata),
    .bar0_addr(bar0_addr),
    .mem_enable(cmd_mem_enable),
    .max_payload_size(max_payload_size),
    .pcicfg_bar(pcicfg_bar),
    .pcicfg_offset(pcicfg_offset),
    .pcicfg_length(pcicfg_length),
    .bus_num(bus_num),
    .device_num(device_num)
);

pci_cfg_space #(
    .VIRTIO_DEVICE_ID(VIRTIO_DEVICE_ID),
    .CLASS_CODE(CLASS_CODE),
    .SUBSYSTEM_ID(SUBSYSTEM_ID),
    .NUM_QUEUES(NUM_QUEUES),
    .MSIX_VECTORS(MSIX_VECTORS),
    .DEVICE_CFG_LENGTH(DEVICE_CFG_LENGTH),
    .BAR0_PREFETCHABLE(BAR0_PREFETCHABLE)
)
u_cfg (
    .clk(clk),
    .rst(rst),
    .reg_addr(cfg_reg_addr),
    .reg_be(reg_be),
    .reg_wdata(reg_wdata),
    .reg_wr(cfg_reg_wr),
    .reg_rdata(cfg_reg_rdata),
    .intx_status(intx_status),
    .cmd_mem_enable(cmd_mem_enable),
    .cmd_bus_master(cmd_bus_master),
    .cmd_intx_disable(cmd_intx_disable),
    .bar0_addr(bar0_addr),
    .msix_enable(msix_enable),
    .msix_function_mask(msix_function_mask),
    .max_payload_size(max_payload_size),
    .max_read_request_size(max_read_request_size),
    .pcicfg_bar(pcicfg_bar),
    .pcicfg_offset(pcicfg_offset),
    .pcicfg_length(pcicfg_length)
);

virtio_pci_common #(
    .DEVICE_FEATURES(DEVICE_FEATURES),
    .NUM_QUEUES(NUM_QUEUES),
    .QUEUE_SIZE_MAX(QUEUE_SIZE_MAX),
    .MSIX_VECTORS(MSIX_VECTORS),
    .QUEUE_INDEX_WIDTH(QUEUE_INDEX_WIDTH)
)
u_common (
    .clk(clk),
    .rst(rst),
    .common_sel(common_sel),
    .notify_sel(notify_sel),
    .isr_sel(isr_sel),
    .reg_addr(bar_page_addr),
    .reg_be(reg_be),
    .reg_wdata(reg_wdata),
    .reg_wr(bar_reg_wr),
    .reg_rd(bar_reg_rd),
    .reg_rdata(common_rdata),
    .msix_enable(msix_enable),
    .cmd_intx_disable(cmd_intx_disable),
    .intx_assert(intx_assert),
    .intx_status(intx_status),
    .msix_req_valid(msix_req_valid),
    .msix_req_vector(msix_req_vector),
    .dev_cfg_read(dev_cfg_read),
    .dev_cfg_changed(dev_cfg_changed),
    .dev_needs_reset(engine_needs_reset),
    .dev_quiesced(dev_quiesced),
    .driver_ok(driver_ok),
    .driver_features(driver_features),
    .dev_reset(dev_reset),
    .queue_reset_active(queue_reset_active),
    .queue_irq_valid(queue_irq_valid),
    .queue_irq_queue(queue_irq_queue),
    .eng_a_queue(q_a_queue),
    .eng_a_size(q_a_size),
    .eng_a_desc(q_a_desc),
    .eng_a_driver(q_a_driver),
    .eng_a_device(q_a_device),
    .eng_a_enable(q_a_enable),
    .eng_b_queue(q_b_queue),
    .eng_b_size(q_b_size),
    .eng_b_driver(q_b_driver),
    .eng_b_device(q_b_device),
    .notify_valid(notify_valid),
    .notify_queue(notify_queue),
    .notify_data(notify_data),
    .notify_idx(notify_idx)
);

virtio_pci_msix #(
    .DATA_WIDTH(DATA_WIDTH),
    .STRB_WIDTH(STRB_WIDTH),
    .VECTORS(MSIX_VECTORS)
)
u_msix (
    .clk(clk),
    .rst(rst),
    .table_sel(table_sel),
    .pba_sel(pba_sel),
    .reg_addr(bar_page_addr),
    .reg_be(reg_be),
    .reg_wdata(reg_wdata),
    .reg_wr(bar_reg_wr),
    .reg_rdata(msix_rdata),
    .msix_enable(msix_enable),
    .function_mask(msix_function_mask),
    .clear(dev_reset),
    .bus_master_enable(cmd_bus_master),
    .requester_id(requester_id),
    .req_valid(msix_req_valid),
    .req_vector(msix_req_vector),
    .tx_msg_tlp_data(tx_msg_tlp_data),
    .tx_msg_tlp_strb(tx_msg_tlp_strb),
    .tx_msg_tlp_hdr(tx_msg_tlp_hdr),
    .tx_msg_tlp_valid(tx_msg_tlp_valid),
    .tx_msg_tlp_sop(tx_msg_tlp_sop),
    .tx_msg_tlp_eop(tx_msg_tlp_eop),
    .tx_msg_tlp_ready(tx_msg_tlp_ready)
);

virtio_vq_engine #(
    .DATA_WIDTH(DATA_WIDTH),
    .KEEP_WIDTH(KEEP_WIDTH),
    .NUM_QUEUES(NUM_QUEUES),
    .QUEUE_INDEX_WIDTH(QUEUE_INDEX_WIDTH),
    .MAX_CHAIN_SEGS(MAX_CHAIN_SEGS),
    .DEST_WIDTH(DEST_WIDTH),
    // three quarters of what the read tags hold (measured at 32 tags, 4 KiB writes QD16:
    // no cap 84 %, 12 KiB 91 %, 6 KiB 74 %)
    .DATA_INFLIGHT_BYTES(DMA_TAGS * 512 * 3 / 4)
)
u_engine (
    .clk(clk),
    .rst(rst),
    .driver_ok(driver_ok),
    .bus_master_enable(cmd_bus_master),
    .driver_features(driver_features),
    .dev_reset(dev_reset),
    .queue_reset_active(queue_reset_active),
    .notify_valid(notify_valid),
    .notify_queue(notify_queue),
    .notify_data(notify_data),
    .notify_idx(notify_idx),
    .q_a_queue(q_a_queue),
    .q_a_size(q_a_size),
    .q_a_desc(q_a_desc),
    .q_a_driver(q_a_driver),
    .q_a_device(q_a_device),
    .q_a_enable(q_a_enable),
    .q_b_queue(q_b_queue),
    .q_b_size(q_b_size),
    .q_b_driver(q_b_driver),
    .q_b_device(q_b_device),
    .queue_irq_valid(queue_irq_valid),
    .queue_irq_queue(queue_irq_queue),
    .needs_reset(engine_needs_reset),
    .quiesced(engine_quiesced),
    .m_rd_req_addr(rd_req_addr),
    .m_rd_req_len(rd_req_len),
    .m_rd_req_dest(rd_req_dest),
    .m_rd_req_last(rd_req_last),
    .m_rd_req_valid(rd_req_valid),
    .m_rd_req_ready(rd_req_ready),
    .s_rd_rsp_tdata(rd_rsp_tdata),
    .s_rd_rsp_tkeep(rd_rsp_tkeep),
    .s_rd_rsp_tvalid(rd_rsp_tvalid),
    .s_rd_rsp_tready(rd_rsp_tready),
    .s_rd_rsp_tlast(rd_rsp_tlast),
    .s_rd_rsp_tdest(rd_rsp_tdest),
    .s_rd_rsp_tuser(rd_rsp_tuser),
    .rd_idle(rd_idle),
    .rd_error(rd_error),
    .m_wr_req_addr(wr_req_addr),
    .m_wr_req_len(wr_req_len),
    .m_wr_req_valid(wr_req_valid),
    .m_wr_req_ready(wr_req_ready),
    .wr_done(wr_done),
    .wr_idle(wr_idle),
    .wr_flush(wr_flush),
    .m_iwr_req_addr(iwr_req_addr),
    .m_iwr_req_len(iwr_req_len),
    .m_iwr_req_data(iwr_req_data),
    .m_iwr_req_valid(iwr_req_valid),
    .m_iwr_req_ready(iwr_req_ready),
    .iwr_done(iwr_done),
    .iwr_idle(iwr_idle),
    .m_be_req_valid(m_be_req_valid),
    .m_be_req_ready(m_be_req_ready),
    .m_be_req_out_len(m_be_req_out_len),
    .m_be_req_in_len(m_be_req_in_len),
    .m_be_out_tdata(m_be_out_tdata),
    .m_be_out_tkeep(m_be_out_tkeep),
    .m_be_out_tvalid(m_be_out_tvalid),
    .m_be_out_tready(m_be_out_tready),
    .m_be_out_tlast(m_be_out_tlast),
    .m_be_out_tuser(m_be_out_tuser),
    .be_abort(be_abort),
    .be_idle(be_idle)
);

virtio_dma_rd #(
    .DATA_WIDTH(DATA_WIDTH),
    .STRB_WIDTH(STRB_WIDTH),
    .KEEP_WIDTH(KEEP_WIDTH),
    .NUM_TAGS(DMA_TAGS),
    .DEST_WIDTH(DEST_WIDTH),
    .CPL_TIMEOUT(CPL_TIMEOUT)
)
u_dma_rd (
    .clk(clk),
    .rst(rst),
    .s_rd_req_addr(rd_req_addr),
    .s_rd_req_len(rd_req_len),
    .s_rd_req_dest(rd_req_dest),
    .s_rd_req_last(rd_req_last),
    .s_rd_req_valid(rd_req_valid),
    .s_rd_req_ready(rd_req_ready),
    .m_rd_rsp_tdata(rd_rsp_tdata),
    .m_rd_rsp_tkeep(rd_rsp_tkeep),
    .m_rd_rsp_tvalid(rd_rsp_tvalid),
    .m_rd_rsp_tready(rd_rsp_tready),
    .m_rd_rsp_tlast(rd_rsp_tlast),
    .m_rd_rsp_tdest(rd_rsp_tdest),
    .m_rd_rsp_tuser(rd_rsp_tuser),
    .tx_rd_tlp_data(tx_rd_tlp_data),
    .tx_rd_tlp_strb(tx_rd_tlp_strb),
    .tx_rd_tlp_hdr(tx_rd_tlp_hdr),
    .tx_rd_tlp_valid(tx_rd_tlp_valid),
    .tx_rd_tlp_sop(tx_rd_tlp_sop),
    .tx_rd_tlp_eop(tx_rd_tlp_eop),
    .tx_rd_tlp_ready(tx_rd_tlp_ready),
    .rx_cpl_tlp_data(rx_cpl_tlp_data),
    .rx_cpl_tlp_strb(rx_cpl_tlp_strb),
    .rx_cpl_tlp_hdr(rx_cpl_tlp_hdr),
    .rx_cpl_tlp_valid(rx_cpl_tlp_valid),
    .rx_cpl_tlp_sop(rx_cpl_tlp_sop),
    .rx_cpl_tlp_eop(rx_cpl_tlp_eop),
    .rx_cpl_tlp_ready(rx_cpl_tlp_ready),
    .requester_id(requester_id),
    .bus_master_enable(cmd_bus_master),
    .max_read_request_size(max_read_request_size),
    .flush(wr_flush),
    .idle(rd_idle),
    .error(rd_error)
);

virtio_dma_wr #(
    .DATA_WIDTH(DATA_WIDTH),
    .STRB_WIDTH(STRB_WIDTH),
    .KEEP_WIDTH(KEEP_WIDTH)
)
u_dma_wr (
    .clk(clk),
    .rst(rst),
    .s_wr_req_addr(wr_req_addr),
    .s_wr_req_len(wr_req_len),
    .s_wr_req_imm(1'b0),                // the used ring goes through virtio_imm_wr
    .s_wr_req_imm_data(64'd0),
    .s_wr_req_valid(wr_req_valid),
    .s_wr_req_ready(wr_req_ready),
    .s_wr_data_tdata(s_be_in_tdata),
    .s_wr_data_tkeep(s_be_in_tkeep),
    .s_wr_data_tvalid(s_be_in_tvalid),
    .s_wr_data_tready(s_be_in_tready),
    .s_wr_data_tlast(s_be_in_tlast),
    .tx_wr_tlp_data(tx_wr_tlp_data),
    .tx_wr_tlp_strb(tx_wr_tlp_strb),
    .tx_wr_tlp_hdr(tx_wr_tlp_hdr),
    .tx_wr_tlp_valid(tx_wr_tlp_valid),
    .tx_wr_tlp_sop(tx_wr_tlp_sop),
    .tx_wr_tlp_eop(tx_wr_tlp_eop),
    .tx_wr_tlp_ready(tx_wr_tlp_ready),
    .requester_id(requester_id),
    .bus_master_enable(cmd_bus_master),
    .max_payload_size(max_payload_size),
    .flush(wr_flush),
    .wr_done(wr_done),
    .idle(wr_idle)
);

// used-ring writes of the ring engine: their own TLP source
virtio_imm_wr #(
    .DATA_WIDTH(DATA_WIDTH)
)
u_imm_wr (
    .clk(clk),
    .rst(rst),
    .s_req_addr(iwr_req_addr),
    .s_req_len(iwr_req_len),
    .s_req_data(iwr_req_data),
    .s_req_valid(iwr_req_valid),
    .s_req_ready(iwr_req_ready),
    .done(iwr_done),
    .idle(iwr_idle),
    .tx_imm_tlp_data(tx_imm_tlp_data),
    .tx_imm_tlp_strb(tx_imm_tlp_strb),
    .tx_imm_tlp_hdr(tx_imm_tlp_hdr),
    .tx_imm_tlp_valid(tx_imm_tlp_valid),
    .tx_imm_tlp_sop(tx_imm_tlp_sop),
    .tx_imm_tlp_eop(tx_imm_tlp_eop),
    .tx_imm_tlp_ready(tx_imm_tlp_ready),
    .requester_id(requester_id),
    .bus_master_enable(cmd_bus_master)
);

virtio_tx_arb #(
    .DATA_WIDTH(DATA_WIDTH),
    .STRB_WIDTH(STRB_WIDTH)
)
u_tx_arb (
    .clk(clk),
    .rst(rst),
    .tx_rd_tlp_data(tx_rd_tlp_data),
    .tx_rd_tlp_strb(tx_rd_tlp_strb),
    .tx_rd_tlp_hdr(tx_rd_tlp_hdr),
    .tx_rd_tlp_valid(tx_rd_tlp_valid),
    .tx_rd_tlp_sop(tx_rd_tlp_sop),
    .tx_rd_tlp_eop(tx_rd_tlp_eop),
    .tx_rd_tlp_ready(tx_rd_tlp_ready),
    .tx_wr_tlp_data(tx_wr_tlp_data),
    .tx_wr_tlp_strb(tx_wr_tlp_strb),
    .tx_wr_tlp_hdr(tx_wr_tlp_hdr),
    .tx_wr_tlp_valid(tx_wr_tlp_valid),
    .tx_wr_tlp_sop(tx_wr_tlp_sop),
    .tx_wr_tlp_eop(tx_wr_tlp_eop),
    .tx_wr_tlp_ready(tx_wr_tlp_ready),
    .tx_imm_tlp_data(tx_imm_tlp_data),
    .tx_imm_tlp_strb(tx_imm_tlp_strb),
    .tx_imm_tlp_hdr(tx_imm_tlp_hdr),
    .tx_imm_tlp_valid(tx_imm_tlp_valid),
    .tx_imm_tlp_sop(tx_imm_tlp_sop),
    .tx_imm_tlp_eop(tx_imm_tlp_eop),
    .tx_imm_tlp_ready(tx_imm_tlp_ready),
    .tx_msg_tlp_data(tx_msg_tlp_data),
    .tx_msg_tlp_strb(tx_msg_tlp_strb),
    .tx_msg_tlp_hdr(tx_msg_tlp_hdr),
    .tx_msg_tlp_valid(tx_msg_tlp_valid),
    .tx_msg_tlp_sop(tx_msg_tlp_sop),
    .tx_msg_tlp_eop(tx_msg_tlp_eop),
    .tx_msg_tlp_ready(tx_msg_tlp_ready),
    .tx_req_tlp_data(tx_req_tlp_data),
    .tx_req_tlp_strb(tx_req_tlp_strb),
    .tx_req_tlp_hdr(tx_req_tlp_hdr),
    .tx_req_tlp_valid(tx_req_tlp_valid),
    .tx_req_tlp_sop(tx_req_tlp_sop),
    .tx_req_tlp_eop(tx_req_tlp_eop),
    .tx_req_tlp_ready(tx_req_tlp_ready)
);

endmodule

`resetall
