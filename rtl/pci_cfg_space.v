// SPDX-License-Identifier: Apache-2.0

`resetall
`timescale 1ns / 1ps
`default_nettype none

/*
 * Type-0 PCI configuration space of a virtio-over-PCI function: the header,
 * a 64-bit memory BAR0, and the capability list (PCI Express, MSI-X, and the
 * five virtio vendor capabilities). Behind a (dword address, byte enables,
 * write data) -> read data register port so that it can also sit behind a hard
 * IP's configuration-extension interface. Reads have no side effects; the
 * pci_cfg_data window dword is intercepted by the completer, which turns it
 * into a BAR0 access (see virtio_pci_completer).
 */
module pci_cfg_space #
(
    // virtio device type (virtio_ids.h); PCI device id = 0x1040 + this
    parameter VIRTIO_DEVICE_ID = 2,
    // PCI class code (base, sub, prog-if)
    parameter [23:0] CLASS_CODE = 24'h010000,
    // PCI revision id; >= 1 marks a non-transitional device
    parameter [7:0] REVISION_ID = 8'h01,
    // subsystem ids; subsystem id >= 0x40 keeps legacy drivers away
    parameter [15:0] SUBSYSTEM_VENDOR_ID = 16'h1AF4,
    parameter [15:0] SUBSYSTEM_ID = 16'h1100,
    // number of virtqueues (sizes the notify structure)
    parameter NUM_QUEUES = 1,
    // number of MSI-X vectors (table size)
    parameter MSIX_VECTORS = 2,
    // length in bytes of the device-specific configuration structure
    parameter DEVICE_CFG_LENGTH = 64,
    // mark BAR0 prefetchable (QEMU does; the host may then place it above 4 GiB)
    parameter BAR0_PREFETCHABLE = 1,
    // Device Capabilities: max payload size supported (0=128 B ... 5=4096 B)
    parameter [2:0] MAX_PAYLOAD_SIZE_SUPPORTED = 3'd2,
    // Link Capabilities: max link speed (1=2.5 GT/s, 2=5, 3=8, 4=16) and width
    parameter [3:0] LINK_SPEED = 4'd3,
    parameter [5:0] LINK_WIDTH = 6'd8
)
(
    input  wire                      clk,
    input  wire                      rst,

    /*
     * Register port (one dword of the 4 KiB configuration space)
     */
    input  wire [9:0]                reg_addr,
    input  wire [3:0]                reg_be,
    input  wire [31:0]               reg_wdata,
    input  wire                      reg_wr,
    output reg  [31:0]               reg_rdata,

    /*
     * Function state
     */
    input  wire                      intx_status,
    output wire                      cmd_mem_enable,
    output wire                      cmd_bus_master,
    output wire                      cmd_intx_disable,
    output wire [63:BAR0_APERTURE]   bar0_addr,
    output wire                      msix_enable,
    output wire                      msix_function_mask,
    output wire [2:0]                max_payload_size,
    output wire [2:0]                max_read_request_size,
    output wire [7:0]                pcicfg_bar,
    output wire [31:0]               pcicfg_offset,
    output wire [31:0]               pcicfg_length
);

`include "virtio_pci_defs.vh"

// the structure lengths advertised in the capabilities
localparam [31:0] NOTIFY_CFG_LENGTH = NOTIFY_OFF_MULTIPLIER * NUM_QUEUES;
localparam [10:0] MSIX_TABLE_SIZE = MSIX_VECTORS[10:0] - 11'd1;

initial begin
    if (NUM_QUEUES < 1 || NUM_QUEUES > 1024) begin
        $error("Error: NUM_QUEUES must be 1..1024 (notify page) (instance %m)");
        $finish;
    end
    if (MSIX_VECTORS < 2 || MSIX_VECTORS > 256) begin
        $error("Error: MSIX_VECTORS must be 2..256 (one 4 KiB table page) (instance %m)");
        $finish;
    end
    if (DEVICE_CFG_LENGTH < 1 || DEVICE_CFG_LENGTH > 4096) begin
        $error("Error: DEVICE_CFG_LENGTH must be 1..4096 (instance %m)");
        $finish;
    end
end

// dword numbers of the registers that are written
localparam [9:0] DW_COMMAND    = 10'h001;
localparam [9:0] DW_BAR0_LO    = 10'h004;
localparam [9:0] DW_BAR0_HI    = 10'h005;
localparam [9:0] DW_INTLINE    = 10'h00F;
// first dword of each capability
localparam [9:0] DW_CAP_PCIE   = {4'd0, CAP_PCIE_PTR[7:2]};
localparam [9:0] DW_CAP_MSIX   = {4'd0, CAP_MSIX_PTR[7:2]};
localparam [9:0] DW_CAP_COMMON = {4'd0, CAP_COMMON_PTR[7:2]};
localparam [9:0] DW_CAP_NOTIFY = {4'd0, CAP_NOTIFY_PTR[7:2]};
localparam [9:0] DW_CAP_ISR    = {4'd0, CAP_ISR_PTR[7:2]};
localparam [9:0] DW_CAP_DEVICE = {4'd0, CAP_DEVICE_PTR[7:2]};
localparam [9:0] DW_CAP_PCICFG = {4'd0, CAP_PCICFG_PTR[7:2]};
localparam [9:0] DW_DEVCTL     = DW_CAP_PCIE + 10'd2;
localparam [9:0] DW_LINKCTL    = DW_CAP_PCIE + 10'd4;
localparam [9:0] DW_MSIX_CTRL  = DW_CAP_MSIX;
localparam [9:0] DW_PCICFG_BAR = DW_CAP_PCICFG + 10'd1;
localparam [9:0] DW_PCICFG_OFF = DW_CAP_PCICFG + 10'd2;
localparam [9:0] DW_PCICFG_LEN = DW_CAP_PCICFG + 10'd3;

// writable state
reg [15:0] command_reg;
reg [63:BAR0_APERTURE] bar0_reg;
reg [7:0]  interrupt_line_reg;
reg [15:0] devctl_reg;
reg [15:0] linkctl_reg;
reg        msix_enable_reg;
reg        msix_function_mask_reg;
reg [7:0]  pcicfg_bar_reg;
reg [31:0] pcicfg_offset_reg;
reg [31:0] pcicfg_length_reg;

// Command bits the function implements; the rest read as zero
localparam [15:0] COMMAND_RW_MASK = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY |
                                    PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE;
// Device Control: error reporting enables [3:0], relaxed ordering [4], max payload size [7:5],
// extended tag [8], no snoop [11], max read request size [14:12]
localparam [15:0] DEVCTL_RW_MASK = 16'h79FF;
// reset value: relaxed ordering and no snoop enabled, MPS 128 B, MRRS 512 B (PCIe defaults)
localparam [15:0] DEVCTL_RESET = 16'h2810;
// Link Control: ASPM [1:0], RCB [3], common clock [6], extended synch [7]
localparam [15:0] LINKCTL_RW_MASK = 16'h00CB;

assign cmd_mem_enable = command_reg[1];
assign cmd_bus_master = command_reg[2];
assign cmd_intx_disable = command_reg[10];
assign bar0_addr = bar0_reg;
assign msix_enable = msix_enable_reg;
assign msix_function_mask = msix_function_mask_reg;
// an MPS larger than supported is clamped (the host must not program it)
assign max_payload_size = devctl_reg[7:5] > MAX_PAYLOAD_SIZE_SUPPORTED ? MAX_PAYLOAD_SIZE_SUPPORTED : devctl_reg[7:5];
assign max_read_request_size = devctl_reg[14:12] > 3'd5 ? 3'd5 : devctl_reg[14:12];
assign pcicfg_bar = pcicfg_bar_reg;
assign pcicfg_offset = pcicfg_offset_reg;
assign pcicfg_length = pcicfg_length_reg;

function [31:0] merge_be(input [31:0] old_value, input [31:0] new_value, input [3:0] be);
    integer i;
    begin
        for (i = 0; i < 4; i = i + 1)
            merge_be[i*8 +: 8] = be[i] ? new_value[i*8 +: 8] : old_value[i*8 +: 8];
    end
endfunction

// virtio_pci_cap dword 0: cap_vndr, cap_next, cap_len, cfg_type
function [31:0] vndr_cap_dw0(input [7:0] next, input [7:0] len, input [7:0] cfg_type);
    vndr_cap_dw0 = {cfg_type, len, next, PCI_CAP_ID_VNDR};
endfunction

wire [31:0] bar0_lo_value = {bar0_reg[31:BAR0_APERTURE], {(BAR0_APERTURE-4){1'b0}},
                             BAR0_PREFETCHABLE != 0 ? 1'b1 : 1'b0, 2'b10, 1'b0};
wire [31:0] command_status = {11'd0, 1'b1, intx_status, 3'd0, command_reg};
wire [31:0] pcicfg_lo = {16'd0, 8'd0, pcicfg_bar_reg};  // bar, id = 0, padding

always @* begin
    reg_rdata = 32'd0;
    case (reg_addr)
        // type-0 header
        10'h000: reg_rdata = {VIRTIO_PCI_MODERN_DEVICE_ID_BASE + VIRTIO_DEVICE_ID[15:0], VIRTIO_PCI_VENDOR_ID};
        10'h001: reg_rdata = command_status;
        10'h002: reg_rdata = {CLASS_CODE, REVISION_ID};
        10'h003: reg_rdata = 32'h0000_0000;  // BIST 0, header type 0, latency 0, cache line 0
        10'h004: reg_rdata = bar0_lo_value;
        10'h005: reg_rdata = bar0_reg[63:32];
        10'h00B: reg_rdata = {SUBSYSTEM_ID, SUBSYSTEM_VENDOR_ID};
        10'h00D: reg_rdata = {24'd0, CAP_PCIE_PTR};
        10'h00F: reg_rdata = {16'h0000, 8'h01, interrupt_line_reg};  // max_lat, min_gnt 0; INTA#

        // PCI Express capability (version 2, endpoint)
        DW_CAP_PCIE + 10'd0: reg_rdata = {16'h0002, CAP_MSIX_PTR, PCI_CAP_ID_EXP};
        // Device Capabilities: MPS supported, 8-bit tags, role-based error reporting
        DW_CAP_PCIE + 10'd1: reg_rdata = {16'h0000, 1'b1, 9'd0, 1'b1, 2'b00, MAX_PAYLOAD_SIZE_SUPPORTED};
        DW_CAP_PCIE + 10'd2: reg_rdata = {16'h0000, devctl_reg};
        // Link Capabilities: port 0, no ASPM, width and speed
        DW_CAP_PCIE + 10'd3: reg_rdata = {22'd0, LINK_WIDTH, LINK_SPEED};
        // Link Control / Status: negotiated at the maximum
        DW_CAP_PCIE + 10'd4: reg_rdata = {6'd0, LINK_WIDTH, LINK_SPEED, linkctl_reg};

        // MSI-X capability
        DW_CAP_MSIX + 10'd0: reg_rdata = {msix_enable_reg, msix_function_mask_reg, 3'd0, MSIX_TABLE_SIZE,
                                         CAP_COMMON_PTR, PCI_CAP_ID_MSIX};
        DW_CAP_MSIX + 10'd1: reg_rdata = BAR0_MSIX_TABLE_OFFSET;   // BIR 0
        DW_CAP_MSIX + 10'd2: reg_rdata = BAR0_MSIX_PBA_OFFSET;     // BIR 0

        // virtio COMMON_CFG
        DW_CAP_COMMON + 10'd0: reg_rdata = vndr_cap_dw0(CAP_NOTIFY_PTR, 8'd16, VIRTIO_PCI_CAP_COMMON_CFG);
        DW_CAP_COMMON + 10'd1: reg_rdata = 32'd0;                  // bar 0, id 0
        DW_CAP_COMMON + 10'd2: reg_rdata = BAR0_COMMON_OFFSET;
        DW_CAP_COMMON + 10'd3: reg_rdata = COMMON_CFG_LENGTH;

        // virtio NOTIFY_CFG
        DW_CAP_NOTIFY + 10'd0: reg_rdata = vndr_cap_dw0(CAP_ISR_PTR, 8'd20, VIRTIO_PCI_CAP_NOTIFY_CFG);
        DW_CAP_NOTIFY + 10'd1: reg_rdata = 32'd0;
        DW_CAP_NOTIFY + 10'd2: reg_rdata = BAR0_NOTIFY_OFFSET;
        DW_CAP_NOTIFY + 10'd3: reg_rdata = NOTIFY_CFG_LENGTH;
        DW_CAP_NOTIFY + 10'd4: reg_rdata = NOTIFY_OFF_MULTIPLIER;

        // virtio ISR_CFG
        DW_CAP_ISR + 10'd0: reg_rdata = vndr_cap_dw0(CAP_DEVICE_PTR, 8'd16, VIRTIO_PCI_CAP_ISR_CFG);
        DW_CAP_ISR + 10'd1: reg_rdata = 32'd0;
        DW_CAP_ISR + 10'd2: reg_rdata = BAR0_ISR_OFFSET;
        DW_CAP_ISR + 10'd3: reg_rdata = ISR_CFG_LENGTH;

        // virtio DEVICE_CFG
        DW_CAP_DEVICE + 10'd0: reg_rdata = vndr_cap_dw0(CAP_PCICFG_PTR, 8'd16, VIRTIO_PCI_CAP_DEVICE_CFG);
        DW_CAP_DEVICE + 10'd1: reg_rdata = 32'd0;
        DW_CAP_DEVICE + 10'd2: reg_rdata = BAR0_DEVICE_OFFSET;
        DW_CAP_DEVICE + 10'd3: reg_rdata = DEVICE_CFG_LENGTH;

        // virtio PCI_CFG: bar, offset and length are driver-writable; pci_cfg_data is the window
        DW_CAP_PCICFG + 10'd0: reg_rdata = vndr_cap_dw0(8'h00, 8'd20, VIRTIO_PCI_CAP_PCI_CFG);
        DW_CAP_PCICFG + 10'd1: reg_rdata = pcicfg_lo;
        DW_CAP_PCICFG + 10'd2: reg_rdata = pcicfg_offset_reg;
        DW_CAP_PCICFG + 10'd3: reg_rdata = pcicfg_length_reg;

        default: reg_rdata = 32'd0;
    endcase
end

// the register-port value of a writable dword after a write with byte enables
wire [31:0] command_next = merge_be({16'd0, command_reg}, reg_wdata, reg_be);
wire [31:0] bar0_lo_next = merge_be(bar0_lo_value, reg_wdata, reg_be);
wire [31:0] bar0_hi_next = merge_be(bar0_reg[63:32], reg_wdata, reg_be);
wire [31:0] intline_next = merge_be({24'd0, interrupt_line_reg}, reg_wdata, reg_be);
wire [31:0] devctl_next = merge_be({16'd0, devctl_reg}, reg_wdata, reg_be);
wire [31:0] linkctl_next = merge_be({16'd0, linkctl_reg}, reg_wdata, reg_be);
wire [31:0] msix_ctrl_next = merge_be({msix_enable_reg, msix_function_mask_reg, 30'd0}, reg_wdata, reg_be);
wire [31:0] pcicfg_bar_next = merge_be(pcicfg_lo, reg_wdata, reg_be);
wire [31:0] pcicfg_off_next = merge_be(pcicfg_offset_reg, reg_wdata, reg_be);
wire [31:0] pcicfg_len_next = merge_be(pcicfg_length_reg, reg_wdata, reg_be);

always @(posedge clk) begin
    if (reg_wr) begin
        case (reg_addr)
            DW_COMMAND:    command_reg <= command_next[15:0] & COMMAND_RW_MASK;
            DW_BAR0_LO:    bar0_reg[31:BAR0_APERTURE] <= bar0_lo_next[31:BAR0_APERTURE];
            DW_BAR0_HI:    bar0_reg[63:32] <= bar0_hi_next;
            DW_INTLINE:    interrupt_line_reg <= intline_next[7:0];
            DW_DEVCTL:     devctl_reg <= devctl_next[15:0] & DEVCTL_RW_MASK;
            DW_LINKCTL:    linkctl_reg <= linkctl_next[15:0] & LINKCTL_RW_MASK;
            DW_MSIX_CTRL: begin
                msix_enable_reg <= msix_ctrl_next[31];
                msix_function_mask_reg <= msix_ctrl_next[30];
            end
            DW_PCICFG_BAR: pcicfg_bar_reg <= pcicfg_bar_next[7:0];
            DW_PCICFG_OFF: pcicfg_offset_reg <= pcicfg_off_next;
            DW_PCICFG_LEN: pcicfg_length_reg <= pcicfg_len_next;
            default: ;
        endcase
    end

    if (rst) begin
        command_reg <= 16'd0;
        bar0_reg <= {(64-BAR0_APERTURE){1'b0}};
        interrupt_line_reg <= 8'd0;
        devctl_reg <= DEVCTL_RESET;
        linkctl_reg <= 16'd0;
        msix_enable_reg <= 1'b0;
        msix_function_mask_reg <= 1'b0;
        pcicfg_bar_reg <= 8'd0;
        pcicfg_offset_reg <= 32'd0;
        pcicfg_length_reg <= 32'd0;
    end
end

endmodule

`resetall
