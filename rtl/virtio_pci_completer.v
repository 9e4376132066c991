// SPDX-License-Identifier: Apache-2.0

`resetall
`timescale 1ns / 1ps
`default_nettype none

/*
 * Completer for requests from the host (rx_req) with completions on tx_cpl.
 * Type-0 configuration reads and writes go to the configuration-space register
 * port (the pci_cfg_data dword of the virtio PCI_CFG capability becomes a BAR0
 * access of cap.length bytes at cap.offset); memory reads and writes that hit
 * BAR0 go to the BAR0 register port, one dword per cycle with its byte enables.
 * Read completions are split at naturally aligned Max_Payload_Size boundaries.
 * Everything else gets the PCIe answer: UR for non-posted requests we do not
 * implement (other functions, type 1, I/O, locked reads, atomics, a BAR miss,
 * memory space disabled, a read crossing 4 KiB, a poisoned config write);
 * posted requests that miss, are malformed or carry poisoned data (BAR0 holds
 * only control registers) are dropped.
 */
module virtio_pci_completer #
(
    // TLP data width
    parameter DATA_WIDTH = 64,
    // TLP strobe width (one bit per dword)
    parameter STRB_WIDTH = DATA_WIDTH/32
)
(
    input  wire                        clk,
    input  wire                        rst,

    /*
     * Requests from the host
     */
    input  wire [DATA_WIDTH-1:0]       rx_req_tlp_data,
    input  wire [STRB_WIDTH-1:0]       rx_req_tlp_strb,
    input  wire [127:0]                rx_req_tlp_hdr,
    input  wire                        rx_req_tlp_valid,
    input  wire                        rx_req_tlp_sop,
    input  wire                        rx_req_tlp_eop,
    output wire                        rx_req_tlp_ready,

    /*
     * Completions to the host
     */
    output wire [DATA_WIDTH-1:0]       tx_cpl_tlp_data,
    output wire [STRB_WIDTH-1:0]       tx_cpl_tlp_strb,
    output wire [127:0]                tx_cpl_tlp_hdr,
    output wire                        tx_cpl_tlp_valid,
    output wire                        tx_cpl_tlp_sop,
    output wire                        tx_cpl_tlp_eop,
    input  wire                        tx_cpl_tlp_ready,

    /*
     * Register ports (read data is combinational)
     */
    output reg  [3:0]                  reg_be,
    output reg  [31:0]                 reg_wdata,
    output reg  [9:0]                  cfg_reg_addr,
    output reg                         cfg_reg_wr,
    input  wire [31:0]                 cfg_reg_rdata,
    output reg  [BAR0_APERTURE-3:0]    bar_reg_addr,
    output reg                         bar_reg_wr,
    output reg                         bar_reg_rd,
    input  wire [31:0]                 bar_reg_rdata,

    /*
     * Function state
     */
    input  wire [63:BAR0_APERTURE]     bar0_addr,
    input  wire                        mem_enable,
    input  wire [2:0]                  max_payload_size,
    input  wire [7:0]                  pcicfg_bar,
    input  wire [31:0]                 pcicfg_offset,
    input  wire [31:0]                 pcicfg_length,
    output wire [7:0]                  bus_num,
    output wire [4:0]                  device_num
);

`include "virtio_pci_defs.vh"

localparam LANE_WIDTH = STRB_WIDTH > 1 ? $clog2(STRB_WIDTH) : 1;
localparam BAR_DW_WIDTH = BAR0_APERTURE - 2;
localparam [LANE_WIDTH-1:0] LANE_LAST = STRB_WIDTH[LANE_WIDTH-1:0] - 1'b1;

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

// TLP fmt and type (PCIe base spec table 2-3)
localparam [4:0] TYPE_MEM     = 5'b00000;
localparam [4:0] TYPE_MEM_LK  = 5'b00001;
localparam [4:0] TYPE_IO      = 5'b00010;
localparam [4:0] TYPE_CFG0    = 5'b00100;
localparam [4:0] TYPE_CFG1    = 5'b00101;
localparam [4:0] TYPE_CPL     = 5'b01010;
localparam [4:0] TYPE_CPL_LK  = 5'b01011;
localparam [4:0] TYPE_FETCH_ADD = 5'b01100;
localparam [4:0] TYPE_SWAP    = 5'b01101;
localparam [4:0] TYPE_CAS     = 5'b01110;
localparam [2:0] FMT_CPL      = 3'b000;
localparam [2:0] FMT_CPL_DATA = 3'b010;
localparam [2:0] CPL_STATUS_SC = 3'b000;
localparam [2:0] CPL_STATUS_UR = 3'b001;

// FSM states
localparam [3:0]
    ST_IDLE    = 4'd0,  // wait for the first beat of a request
    ST_MEM_WR  = 4'd1,  // payload dwords -> BAR0 writes
    ST_DRAIN   = 4'd2,  // discard the rest of a payload
    ST_CFG_RD  = 4'd3,  // read one config dword
    ST_CFG_WR  = 4'd4,  // write one config dword
    ST_WIN_RD  = 4'd5,  // pci_cfg_data read: BAR0 read through the window
    ST_WIN_WR  = 4'd6,  // pci_cfg_data write: BAR0 write through the window
    ST_CPL     = 4'd7,  // one-beat completion (config, UR)
    ST_RD_HDR  = 4'd8,  // start the next read completion
    ST_RD_DATA = 4'd9;  // read dwords into beats and send them

reg [3:0] state_reg;

// ---- header fields of the request being served
reg [15:0] req_id_reg;
reg [9:0]  req_tag_reg;
reg [2:0]  req_tc_reg;
reg [2:0]  req_attr_reg;
reg [3:0]  req_first_be_reg;
reg [3:0]  req_last_be_reg;
reg [15:0] cpl_completer_id_reg;
reg [9:0]  cfg_addr_reg;
reg        mem_wr_ok_reg;     // the write hits BAR0 and is well formed
reg [3:0]  after_drain_reg;

// ---- captured bus and device number (from type-0 configuration writes)
reg [7:0] bus_num_reg;
reg [4:0] device_num_reg;
assign bus_num = bus_num_reg;
assign device_num = device_num_reg;

// ---- payload walk
reg [LANE_WIDTH-1:0] lane_reg;
reg [10:0] dw_left_reg;     // dwords of the request still to transfer
reg        dw_first_reg;     // the next dword is the request's first
reg [BAR_DW_WIDTH-1:0] bar_dw_reg;

// ---- completion under construction
reg [2:0]  cpl_status_reg;
reg [6:0]  cpl_lower_addr_reg;   // of a one-beat completion: 0 except for memory reads
reg [31:0] cpl_data_reg;
reg        cpl_has_data_reg;
reg [12:0] bc_left_reg;     // byte count still to return
reg [10:0] cpl_dw_left_reg; // dwords left in the current completion
reg [127:0] cpl_hdr_reg;
reg [DATA_WIDTH-1:0] acc_data_reg;
reg [STRB_WIDTH-1:0] acc_strb_reg;
reg        acc_full_reg;
reg        acc_last_reg;
reg        beat_first_reg;

// ---- PCI_CFG window data register
reg [31:0] pcicfg_data_reg;

// ---- output register
reg [DATA_WIDTH-1:0] tx_data_reg;
reg [STRB_WIDTH-1:0] tx_strb_reg;
reg [127:0] tx_hdr_reg;
reg tx_valid_reg, tx_sop_reg, tx_eop_reg;

assign tx_cpl_tlp_data = tx_data_reg;
assign tx_cpl_tlp_strb = tx_strb_reg;
assign tx_cpl_tlp_hdr = tx_hdr_reg;
assign tx_cpl_tlp_valid = tx_valid_reg;
assign tx_cpl_tlp_sop = tx_sop_reg;
assign tx_cpl_tlp_eop = tx_eop_reg;

wire out_free = !tx_valid_reg || tx_cpl_tlp_ready;

// ---- byte-enable arithmetic
function [1:0] be_low(input [3:0] be);   // offset of the first enabled byte
    be_low = be[0] ? 2'd0 : be[1] ? 2'd1 : be[2] ? 2'd2 : be[3] ? 2'd3 : 2'd0;
endfunction
function [1:0] be_high(input [3:0] be);  // offset of the last enabled byte
    be_high = be[3] ? 2'd3 : be[2] ? 2'd2 : be[1] ? 2'd1 : 2'd0;
endfunction

// ---- decode of the request at the head of rx_req
wire [31:0] hdr_dw0 = rx_req_tlp_hdr[127:96];
wire [31:0] hdr_dw1 = rx_req_tlp_hdr[95:64];
wire [31:0] hdr_dw2 = rx_req_tlp_hdr[63:32];
wire [31:0] hdr_dw3 = rx_req_tlp_hdr[31:0];

wire [2:0]  hdr_fmt = hdr_dw0[31:29];       // Fmt
wire [4:0]  hdr_type = hdr_dw0[28:24];      // Type
wire        hdr_t9 = hdr_dw0[23];           // T9 (10-bit tag)
wire [2:0]  hdr_tc = hdr_dw0[22:20];        // TC
wire        hdr_t8 = hdr_dw0[19];           // T8 (10-bit tag)
wire        hdr_attr2 = hdr_dw0[18];        // Attr[2] (ID-based ordering)
wire        hdr_ep = hdr_dw0[14];           // EP (poisoned data)
wire [1:0]  hdr_attr = hdr_dw0[13:12];      // Attr[1:0] (relaxed ordering, no snoop)
wire [9:0]  hdr_length = hdr_dw0[9:0];      // Length (0 means 1024)
wire [15:0] hdr_requester_id = hdr_dw1[31:16]; // Requester ID
wire [7:0]  hdr_tag = hdr_dw1[15:8];        // Tag[7:0]
wire [3:0]  hdr_last_be = hdr_dw1[7:4];     // Last DW BE
wire [3:0]  hdr_first_be = hdr_dw1[3:0];    // 1st DW BE
wire [15:0] hdr_cfg_target = hdr_dw2[31:16]; // Bus, Device, Function of a config request
wire [9:0]  hdr_cfg_reg = hdr_dw2[11:2];    // Extended Register Number, Register Number

wire        hdr_has_data = hdr_fmt[1];
wire        hdr_4dw = hdr_fmt[0];
wire        hdr_prefix = hdr_fmt[2];
wire [10:0] hdr_len = {hdr_length == 10'd0, hdr_length};
wire [63:0] hdr_addr = hdr_4dw ? {hdr_dw2, hdr_dw3[31:2], 2'b00} : {32'd0, hdr_dw2[31:2], 2'b00};
wire        hdr_bar_hit = mem_enable && hdr_addr[63:BAR0_APERTURE] == bar0_addr;
// dwords from the start address to the end of its 4 KiB page
wire [10:0] hdr_page_dw = 11'd1024 - {1'b0, hdr_addr[11:2]};
wire        hdr_crosses_4k = hdr_len > hdr_page_dw;
wire [12:0] hdr_mps_bytes = 13'd128 << max_payload_size;
wire        hdr_over_mps = {hdr_len, 2'b00} > hdr_mps_bytes;

wire is_mem = hdr_type == TYPE_MEM && !hdr_prefix;
wire is_cfg0 = hdr_type == TYPE_CFG0 && !hdr_prefix;
wire is_msg = hdr_type[4:3] == 2'b10;
wire is_cpl = hdr_type == TYPE_CPL || hdr_type == TYPE_CPL_LK;
wire is_atomic = (hdr_type == TYPE_FETCH_ADD || hdr_type == TYPE_SWAP || hdr_type == TYPE_CAS) && !hdr_prefix;
// posted requests never get a completion; everything else we do not implement gets UR
wire is_posted = (is_mem && hdr_has_data) || is_msg || is_cpl || hdr_prefix;

// total byte count of a memory read (PCIe base spec 2.3.1.1)
wire [12:0] hdr_byte_count = hdr_len == 11'd1 ?
    (hdr_first_be == 4'd0 ? 13'd1 : {11'd0, be_high(hdr_first_be)} - {11'd0, be_low(hdr_first_be)} + 13'd1) :
    {hdr_len, 2'b00} - {11'd0, be_low(hdr_first_be)} - (13'd3 - {11'd0, be_high(hdr_last_be)});

// byte count of an AtomicOp completion: the operand size (PCIe base spec 2.2.9), that is the
// payload, or half of it for CAS (compare and swap values)
wire [12:0] hdr_atomic_operand_bytes = hdr_type == TYPE_CAS ? {1'b0, hdr_len, 1'b0} : {hdr_len, 2'b00};

// ---- read-completion sizing
wire [10:0] mps_dw = 11'd32 << max_payload_size;
wire [10:0] rd_to_boundary = mps_dw - ({1'b0, bar_dw_reg[9:0]} & (mps_dw - 11'd1));
wire [10:0] rd_cpl_dw = dw_left_reg < rd_to_boundary ? dw_left_reg : rd_to_boundary;
wire [1:0]  rd_low_offset = dw_first_reg ? be_low(req_first_be_reg) : 2'd0;

// ---- the current payload dword and its byte enables
wire [31:0] rx_dw = rx_req_tlp_data[lane_reg*32 +: 32];
wire        lane_last = lane_reg == LANE_LAST;
wire        lane_next_empty = lane_last ? 1'b1 : !rx_req_tlp_strb[lane_reg + 1'b1];
wire [3:0]  dw_be = dw_first_reg ? req_first_be_reg : (dw_left_reg == 11'd1 ? req_last_be_reg : 4'b1111);
// the write beat is done when its last lane is used, the request's payload ends, or the TLP ends early
wire        wr_beat_done = lane_last || dw_left_reg == 11'd1 || (rx_req_tlp_eop && lane_next_empty);

// ---- PCI_CFG window: cap.length bytes at cap.offset of BAR cap.bar (ours is BAR0)
wire [3:0] win_len_mask = pcicfg_length == 32'd1 ? 4'b0001 : pcicfg_length == 32'd2 ? 4'b0011 : 4'b1111;
wire       win_ok = pcicfg_bar == 8'd0 &&
                    (pcicfg_length == 32'd1 || pcicfg_length == 32'd2 || pcicfg_length == 32'd4) &&
                    (pcicfg_offset & (pcicfg_length - 32'd1)) == 32'd0 &&
                    pcicfg_offset < (32'd1 << BAR0_APERTURE);
wire [4:0] win_shift = {pcicfg_offset[1:0], 3'b000};
wire [31:0] win_byte_mask = {{8{win_len_mask[3]}}, {8{win_len_mask[2]}}, {8{win_len_mask[1]}}, {8{win_len_mask[0]}}};
wire [31:0] win_rdata = (bar_reg_rdata >> win_shift) & win_byte_mask;

wire cfg_is_window = cfg_addr_reg == {4'd0, CAP_PCICFG_DATA[7:2]};

// ---- register-port drive and rx_req ready
reg rx_ready;

always @* begin
    rx_ready = 1'b0;
    reg_be = 4'b0000;
    reg_wdata = 32'd0;
    cfg_reg_addr = cfg_addr_reg;
    cfg_reg_wr = 1'b0;
    bar_reg_addr = bar_dw_reg;
    bar_reg_wr = 1'b0;
    bar_reg_rd = 1'b0;

    case (state_reg)
        ST_IDLE: begin
            // take requests without payload in one go; drop stray beats outside a TLP
            if (rx_req_tlp_valid && (!rx_req_tlp_sop || !hdr_has_data))
                rx_ready = 1'b1;
        end
        ST_MEM_WR: begin
            if (rx_req_tlp_valid) begin
                reg_be = dw_be;
                reg_wdata = rx_dw;
                bar_reg_wr = mem_wr_ok_reg && rx_req_tlp_strb[lane_reg];
                rx_ready = wr_beat_done;
            end
        end
        ST_DRAIN: begin
            rx_ready = 1'b1;
        end
        ST_CFG_WR: begin
            if (rx_req_tlp_valid) begin
                reg_be = req_first_be_reg;
                reg_wdata = rx_req_tlp_data[31:0];
                cfg_reg_wr = !cfg_is_window;
                rx_ready = 1'b1;
            end
        end
        ST_WIN_WR: begin
            reg_be = win_len_mask << pcicfg_offset[1:0];
            reg_wdata = pcicfg_data_reg << win_shift;
            bar_reg_addr = pcicfg_offset[BAR0_APERTURE-1:2];
            bar_reg_wr = 1'b1;
        end
        ST_WIN_RD: begin
            reg_be = win_len_mask << pcicfg_offset[1:0];
            bar_reg_addr = pcicfg_offset[BAR0_APERTURE-1:2];
            bar_reg_rd = win_ok;
        end
        ST_RD_DATA: begin
            if (!acc_full_reg) begin
                reg_be = dw_be;
                bar_reg_rd = 1'b1;
            end
        end
        default: ;
    endcase
end

assign rx_req_tlp_ready = rx_ready;

always @(posedge clk) begin
    if (tx_valid_reg && tx_cpl_tlp_ready)
        tx_valid_reg <= 1'b0;

    case (state_reg)
        ST_IDLE: begin
            if (rx_req_tlp_valid && rx_req_tlp_sop) begin
                req_id_reg <= hdr_requester_id;
                req_tag_reg <= {hdr_t9, hdr_t8, hdr_tag};
                req_tc_reg <= hdr_tc;
                req_attr_reg <= {hdr_attr2, hdr_attr};
                req_first_be_reg <= hdr_first_be;
                req_last_be_reg <= hdr_last_be;
                cfg_addr_reg <= hdr_cfg_reg;
                cpl_completer_id_reg <= {bus_num_reg, device_num_reg, 3'b000};
                bar_dw_reg <= hdr_addr[BAR0_APERTURE-1:2];
                dw_left_reg <= hdr_len;
                dw_first_reg <= 1'b1;
                lane_reg <= {LANE_WIDTH{1'b0}};
                cpl_status_reg <= CPL_STATUS_SC;
                cpl_lower_addr_reg <= 7'd0;
                cpl_has_data_reg <= 1'b0;
                after_drain_reg <= ST_IDLE;

                if (is_mem && hdr_has_data) begin
                    // memory write: dropped silently when it misses BAR0 or is malformed, and
                    // when its data is poisoned: poisoned data must not modify a control register
                    // (PCIe base spec 2.7.2.2)
                    mem_wr_ok_reg <= hdr_bar_hit && !hdr_crosses_4k && !hdr_over_mps && !hdr_ep;
                    state_reg <= ST_MEM_WR;
                end else if (is_mem) begin
                    // memory read
                    bc_left_reg <= hdr_byte_count;
                    cpl_lower_addr_reg <= {hdr_addr[6:2], be_low(hdr_first_be)};
                    if (hdr_bar_hit && !hdr_crosses_4k) begin
                        state_reg <= ST_RD_HDR;
                    end else begin
                        cpl_status_reg <= CPL_STATUS_UR;
                        state_reg <= ST_CPL;
                    end
                end else if (is_cfg0 && hdr_cfg_target[2:0] == 3'd0 && !(hdr_has_data && hdr_ep)) begin
                    // type-0 configuration request to function 0 (a poisoned write gets UR below)
                    cpl_completer_id_reg <= hdr_cfg_target;
                    bc_left_reg <= 13'd4;
                    if (hdr_has_data) begin
                        bus_num_reg <= hdr_cfg_target[15:8];
                        device_num_reg <= hdr_cfg_target[7:3];
                        state_reg <= ST_CFG_WR;
                    end else begin
                        state_reg <= ST_CFG_RD;
                    end
                end else if (is_posted) begin
                    // messages, stray completions, prefixed TLPs: consume and drop
                    state_reg <= hdr_has_data ? ST_DRAIN : ST_IDLE;
                end else begin
                    // unsupported non-posted request: UR (config to another function, poisoned
                    // config write, type 1, I/O, locked read, atomics)
                    cpl_status_reg <= CPL_STATUS_UR;
                    bc_left_reg <= 13'd4;
                    if (is_cfg0 || hdr_type == TYPE_CFG1 || hdr_type == TYPE_IO)
                        cpl_completer_id_reg <= is_cfg0 ? hdr_cfg_target : {bus_num_reg, device_num_reg, 3'b000};
                    if (hdr_type == TYPE_MEM_LK) begin
                        bc_left_reg <= hdr_byte_count;
                        cpl_lower_addr_reg <= {hdr_addr[6:2], be_low(hdr_first_be)};
                    end
                    if (is_atomic)
                        bc_left_reg <= hdr_atomic_operand_bytes;
                    after_drain_reg <= ST_CPL;
                    state_reg <= hdr_has_data ? ST_DRAIN : ST_CPL;
                end
            end
        end

        ST_MEM_WR: begin
            if (rx_req_tlp_valid) begin
                bar_dw_reg <= bar_dw_reg + 1'b1;
                dw_left_reg <= dw_left_reg - 11'd1;
                dw_first_reg <= 1'b0;
                lane_reg <= wr_beat_done ? {LANE_WIDTH{1'b0}} : lane_reg + 1'b1;
                if (wr_beat_done) begin
                    if (rx_req_tlp_eop)
                        state_reg <= ST_IDLE;
                    else if (dw_left_reg == 11'd1)
                        state_reg <= ST_DRAIN;
                end
            end
        end

        ST_DRAIN: begin
            if (rx_req_tlp_valid && rx_req_tlp_eop)
                state_reg <= after_drain_reg;
        end

        ST_CFG_RD: begin
            cpl_has_data_reg <= 1'b1;
            if (cfg_is_window) begin
                state_reg <= ST_WIN_RD;
            end else begin
                cpl_data_reg <= cfg_reg_rdata;
                state_reg <= ST_CPL;
            end
        end

        ST_CFG_WR: begin
            if (rx_req_tlp_valid) begin
                if (cfg_is_window) begin
                    pcicfg_data_reg <= {req_first_be_reg[3] ? rx_req_tlp_data[31:24] : pcicfg_data_reg[31:24],
                                        req_first_be_reg[2] ? rx_req_tlp_data[23:16] : pcicfg_data_reg[23:16],
                                        req_first_be_reg[1] ? rx_req_tlp_data[15:8]  : pcicfg_data_reg[15:8],
                                        req_first_be_reg[0] ? rx_req_tlp_data[7:0]   : pcicfg_data_reg[7:0]};
                end
                after_drain_reg <= (cfg_is_window && win_ok && req_first_be_reg != 4'd0) ? ST_WIN_WR : ST_CPL;
                if (rx_req_tlp_eop)
                    state_reg <= (cfg_is_window && win_ok && req_first_be_reg != 4'd0) ? ST_WIN_WR : ST_CPL;
                else
                    state_reg <= ST_DRAIN;
            end
        end

        ST_WIN_WR: begin
            state_reg <= ST_CPL;
        end

        ST_WIN_RD: begin
            if (win_ok) begin
                pcicfg_data_reg <= win_rdata;
                cpl_data_reg <= win_rdata;
            end else begin
                cpl_data_reg <= pcicfg_data_reg;
            end
            state_reg <= ST_CPL;
        end

        ST_CPL: begin
            if (out_free) begin
                tx_valid_reg <= 1'b1;
                tx_sop_reg <= 1'b1;
                tx_eop_reg <= 1'b1;
                tx_data_reg <= {{(DATA_WIDTH-32){1'b0}}, cpl_data_reg};
                tx_strb_reg <= {{(STRB_WIDTH-1){1'b0}}, cpl_has_data_reg};
                tx_hdr_reg <= {cpl_has_data_reg ? FMT_CPL_DATA : FMT_CPL, TYPE_CPL,
                               req_tag_reg[9], req_tc_reg, req_tag_reg[8], req_attr_reg[2],
                               4'b0000,                            // LN, TH, TD, EP
                               req_attr_reg[1:0], 2'b00,           // Attr, AT
                               cpl_has_data_reg ? 10'd1 : 10'd0,   // Length
                               cpl_completer_id_reg, cpl_status_reg, 1'b0, bc_left_reg[11:0],
                               req_id_reg, req_tag_reg[7:0], 1'b0, cpl_lower_addr_reg,
                               32'd0};
                state_reg <= ST_IDLE;
            end
        end

        ST_RD_HDR: begin
            cpl_dw_left_reg <= rd_cpl_dw;
            cpl_hdr_reg <= {FMT_CPL_DATA, TYPE_CPL,
                            req_tag_reg[9], req_tc_reg, req_tag_reg[8], req_attr_reg[2],
                            4'b0000, req_attr_reg[1:0], 2'b00,
                            rd_cpl_dw[9:0],
                            cpl_completer_id_reg, CPL_STATUS_SC, 1'b0, bc_left_reg[11:0],
                            req_id_reg, req_tag_reg[7:0], 1'b0, bar_dw_reg[4:0], rd_low_offset,
                            32'd0};
            bc_left_reg <= bc_left_reg - ({rd_cpl_dw, 2'b00} - {11'd0, rd_low_offset});
            acc_full_reg <= 1'b0;
            acc_strb_reg <= {STRB_WIDTH{1'b0}};
            acc_data_reg <= {DATA_WIDTH{1'b0}};
            beat_first_reg <= 1'b1;
            lane_reg <= {LANE_WIDTH{1'b0}};
            state_reg <= ST_RD_DATA;
        end

        ST_RD_DATA: begin
            if (acc_full_reg) begin
                if (out_free) begin
                    tx_valid_reg <= 1'b1;
                    tx_sop_reg <= beat_first_reg;
                    tx_eop_reg <= acc_last_reg;
                    tx_data_reg <= acc_data_reg;
                    tx_strb_reg <= acc_strb_reg;
                    tx_hdr_reg <= cpl_hdr_reg;
                    acc_full_reg <= 1'b0;
                    acc_strb_reg <= {STRB_WIDTH{1'b0}};
                    beat_first_reg <= 1'b0;
                    if (acc_last_reg)
                        state_reg <= dw_left_reg == 11'd0 ? ST_IDLE : ST_RD_HDR;
                end
            end else begin
                acc_data_reg[lane_reg*32 +: 32] <= bar_reg_rdata;
                acc_strb_reg[lane_reg] <= 1'b1;
                bar_dw_reg <= bar_dw_reg + 1'b1;
                dw_left_reg <= dw_left_reg - 11'd1;
                dw_first_reg <= 1'b0;
                cpl_dw_left_reg <= cpl_dw_left_reg - 11'd1;
                lane_reg <= lane_reg + 1'b1;
                if (lane_last || cpl_dw_left_reg == 11'd1) begin
                    acc_full_reg <= 1'b1;
                    acc_last_reg <= cpl_dw_left_reg == 11'd1;
                end
            end
        end

        default: state_reg <= ST_IDLE;
    endcase

    if (rst) begin
        state_reg <= ST_IDLE;
        tx_valid_reg <= 1'b0;
        bus_num_reg <= 8'd0;
        device_num_reg <= 5'd0;
        pcicfg_data_reg <= 32'd0;
        acc_full_reg <= 1'b0;
    end
end

endmodule

`resetall
