// SPDX-License-Identifier: Apache-2.0

`resetall
`timescale 1ns / 1ps
`default_nettype none

/*
 * Unit-test top of the DMA layer: virtio_dma_rd and virtio_dma_wr share the
 * tx_req stream through virtio_tx_arb, as they do in the device; the arbiter's
 * MSI-X input is driven by the testbench. Test-only: not part of rtl/.
 */
module dma_tb_top #
(
    // TLP and byte stream width: 64, 128 or 256
    parameter DATA_WIDTH = 64,
    // TLP strobe width (one bit per dword)
    parameter STRB_WIDTH = DATA_WIDTH/32,
    // byte stream tkeep width
    parameter KEEP_WIDTH = DATA_WIDTH/8,
    // read TLPs in flight
    parameter NUM_TAGS = 16,
    // largest read TLP in bytes before the MRRS cap
    parameter MAX_READ_TLP = 512,
    // read response destination width
    parameter DEST_WIDTH = 2,
    // completion timeout in cycles
    parameter CPL_TIMEOUT = 65536
)
(
    input  wire                   clk,
    input  wire                   rst,

    /*
     * Read requests and responses
     */
    input  wire [63:0]            s_rd_req_addr,
    input  wire [12:0]            s_rd_req_len,
    input  wire [DEST_WIDTH-1:0]  s_rd_req_dest,
    input  wire                   s_rd_req_last,
    input  wire                   s_rd_req_valid,
    output wire                   s_rd_req_ready,
    output wire [DATA_WIDTH-1:0]  m_rd_rsp_tdata,
    output wire [KEEP_WIDTH-1:0]  m_rd_rsp_tkeep,
    output wire                   m_rd_rsp_tvalid,
    input  wire                   m_rd_rsp_tready,
    output wire                   m_rd_rsp_tlast,
    output wire [DEST_WIDTH-1:0]  m_rd_rsp_tdest,
    output wire                   m_rd_rsp_tuser,

    /*
     * Write requests and data
     */
    input  wire [63:0]            s_wr_req_addr,
    input  wire [12:0]            s_wr_req_len,
    input  wire                   s_wr_req_imm,
    input  wire [63:0]            s_wr_req_imm_data,
    input  wire                   s_wr_req_valid,
    output wire                   s_wr_req_ready,
    input  wire [DATA_WIDTH-1:0]  s_wr_data_tdata,
    input  wire [KEEP_WIDTH-1:0]  s_wr_data_tkeep,
    input  wire                   s_wr_data_tvalid,
    output wire                   s_wr_data_tready,
    input  wire                   s_wr_data_tlast,

    /*
     * MSI-X message stand-in
     */
    input  wire [DATA_WIDTH-1:0]  tx_msg_tlp_data,
    input  wire [STRB_WIDTH-1:0]  tx_msg_tlp_strb,
    input  wire [127:0]           tx_msg_tlp_hdr,
    input  wire                   tx_msg_tlp_valid,
    input  wire                   tx_msg_tlp_sop,
    input  wire                   tx_msg_tlp_eop,
    output wire                   tx_msg_tlp_ready,

    /*
     * TLP port
     */
    output wire [DATA_WIDTH-1:0]  tx_req_tlp_data,
    output wire [STRB_WIDTH-1:0]  tx_req_tlp_strb,
    output wire [127:0]           tx_req_tlp_hdr,
    output wire                   tx_req_tlp_valid,
    output wire                   tx_req_tlp_sop,
    output wire                   tx_req_tlp_eop,
    input  wire                   tx_req_tlp_ready,
    input  wire [DATA_WIDTH-1:0]  rx_cpl_tlp_data,
    input  wire [STRB_WIDTH-1:0]  rx_cpl_tlp_strb,
    input  wire [127:0]           rx_cpl_tlp_hdr,
    input  wire                   rx_cpl_tlp_valid,
    input  wire                   rx_cpl_tlp_sop,
    input  wire                   rx_cpl_tlp_eop,
    output wire                   rx_cpl_tlp_ready,

    /*
     * Configuration and status
     */
    input  wire [15:0]            requester_id,
    input  wire                   bus_master_enable,
    input  wire [2:0]             max_read_request_size,
    input  wire [2:0]             max_payload_size,
    input  wire                   flush,
    output wire                   rd_idle,
    output wire                   rd_error,
    output wire                   wr_idle,
    output wire                   wr_done
);

wire [DATA_WIDTH-1:0] tx_rd_tlp_data;
wire [STRB_WIDTH-1:0] tx_rd_tlp_strb;
wire [127:0]          tx_rd_tlp_hdr;
wire                  tx_rd_tlp_valid;
wire                  tx_rd_tlp_sop;
wire                  tx_rd_tlp_eop;
wire                  tx_rd_tlp_ready;

wire [DATA_WIDTH-1:0] tx_wr_tlp_data;
wire [STRB_WIDTH-1:0] tx_wr_tlp_strb;
wire [127:0]          tx_wr_tlp_hdr;
wire                  tx_wr_tlp_valid;
wire                  tx_wr_tlp_sop;
wire                  tx_wr_tlp_eop;
wire                  tx_wr_tlp_ready;

virtio_dma_rd #(
    .DATA_WIDTH(DATA_WIDTH),
    .NUM_TAGS(NUM_TAGS),
    .MAX_READ_TLP(MAX_READ_TLP),
    .DEST_WIDTH(DEST_WIDTH),
    .CPL_TIMEOUT(CPL_TIMEOUT)
) dma_rd_inst (
    .clk(clk),
    .rst(rst),
    .s_rd_req_addr(s_rd_req_addr),
    .s_rd_req_len(s_rd_req_len),
    .s_rd_req_dest(s_rd_req_dest),
    .s_rd_req_last(s_rd_req_last),
    .s_rd_req_valid(s_rd_req_valid),
    .s_rd_req_ready(s_rd_req_ready),
    .m_rd_rsp_tdata(m_rd_rsp_tdata),
    .m_rd_rsp_tkeep(m_rd_rsp_tkeep),
    .m_rd_rsp_tvalid(m_rd_rsp_tvalid),
    .m_rd_rsp_tready(m_rd_rsp_tready),
    .m_rd_rsp_tlast(m_rd_rsp_tlast),
    .m_rd_rsp_tdest(m_rd_rsp_tdest),
    .m_rd_rsp_tuser(m_rd_rsp_tuser),
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
    .bus_master_enable(bus_master_enable),
    .max_read_request_size(max_read_request_size),
    .flush(flush),
    .idle(rd_idle),
    .error(rd_error)
);

virtio_dma_wr #(
    .DATA_WIDTH(DATA_WIDTH)
) dma_wr_inst (
    .clk(clk),
    .rst(rst),
    .s_wr_req_addr(s_wr_req_addr),
    .s_wr_req_len(s_wr_req_len),
    .s_wr_req_imm(s_wr_req_imm),
    .s_wr_req_imm_data(s_wr_req_imm_data),
    .s_wr_req_valid(s_wr_req_valid),
    .s_wr_req_ready(s_wr_req_ready),
    .s_wr_data_tdata(s_wr_data_tdata),
    .s_wr_data_tkeep(s_wr_data_tkeep),
    .s_wr_data_tvalid(s_wr_data_tvalid),
    .s_wr_data_tready(s_wr_data_tready),
    .s_wr_data_tlast(s_wr_data_tlast),
    .tx_wr_tlp_data(tx_wr_tlp_data),
    .tx_wr_tlp_strb(tx_wr_tlp_strb),
    .tx_wr_tlp_hdr(tx_wr_tlp_hdr),
    .tx_wr_tlp_valid(tx_wr_tlp_valid),
    .tx_wr_tlp_sop(tx_wr_tlp_sop),
    .tx_wr_tlp_eop(tx_wr_tlp_eop),
    .tx_wr_tlp_ready(tx_wr_tlp_ready),
    .requester_id(requester_id),
    .bus_master_enable(bus_master_enable),
    .max_payload_size(max_payload_size),
    .flush(flush),
    .wr_done(wr_done),
    .idle(wr_idle)
);

virtio_tx_arb #(
    .DATA_WIDTH(DATA_WIDTH)
) tx_arb_inst (
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
    // the immediate-write source (virtio_imm_wr) is exercised by the system tests
    .tx_imm_tlp_data({DATA_WIDTH{1'b0}}),
    .tx_imm_tlp_strb({STRB_WIDTH{1'b0}}),
    .tx_imm_tlp_hdr(128'd0),
    .tx_imm_tlp_valid(1'b0),
    .tx_imm_tlp_sop(1'b0),
    .tx_imm_tlp_eop(1'b0),
    .tx_imm_tlp_ready(),
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
