// SPDX-License-Identifier: Apache-2.0

`resetall
`timescale 1ns / 1ps
`default_nettype none

/*
 * MSI-X table and pending-bit array in BAR0, and the message generator.
 * Interrupt requests name a vector; a request for a vector that is masked
 * (per vector or by the function mask), or while bus mastering is off, sets
 * its pending bit instead, and the message goes out once it is unmasked.
 * Messages leave as one-dword memory writes (3-DW header below 4 GiB, 4-DW
 * above) on a TLP stream that the function merges into tx_req.
 */
module virtio_pci_msix #
(
    // TLP data width
    parameter DATA_WIDTH = 64,
    // TLP strobe width (one bit per dword)
    parameter STRB_WIDTH = DATA_WIDTH/32,
    // number of vectors in the table
    parameter VECTORS = 2
)
(
    input  wire                   clk,
    input  wire                   rst,

    /*
     * Register port: one dword of the table page or the PBA page
     */
    input  wire                   table_sel,
    input  wire                   pba_sel,
    input  wire [9:0]             reg_addr,
    input  wire [3:0]             reg_be,
    input  wire [31:0]            reg_wdata,
    input  wire                   reg_wr,
    output reg  [31:0]            reg_rdata,

    /*
     * Control
     */
    input  wire                   msix_enable,
    input  wire                   function_mask,
    input  wire                   clear,            // virtio device reset: drop queued and pending events
    input  wire                   bus_master_enable,
    input  wire [15:0]            requester_id,
    input  wire                   req_valid,
    input  wire [10:0]            req_vector,

    /*
     * Message TLP output
     */
    output wire [DATA_WIDTH-1:0]  tx_msg_tlp_data,
    output wire [STRB_WIDTH-1:0]  tx_msg_tlp_strb,
    output wire [127:0]           tx_msg_tlp_hdr,
    output wire                   tx_msg_tlp_valid,
    output wire                   tx_msg_tlp_sop,
    output wire                   tx_msg_tlp_eop,
    input  wire                   tx_msg_tlp_ready
);

localparam VECTOR_WIDTH = VECTORS > 1 ? $clog2(VECTORS) : 1;
localparam PBA_DWORDS = (VECTORS + 31) / 32;
localparam [VECTOR_WIDTH-1:0] VECTOR_LAST = VECTORS[VECTOR_WIDTH-1:0] - 1'b1;

// memory write TLP fmt/type
localparam [2:0] FMT_3DW_DATA = 3'b010;
localparam [2:0] FMT_4DW_DATA = 3'b011;
localparam [4:0] TYPE_MEM = 5'b00000;

initial begin
    if (VECTORS < 1 || VECTORS > 256) begin
        $error("Error: VECTORS must be 1..256 (instance %m)");
        $finish;
    end
    if (DATA_WIDTH != 64 && DATA_WIDTH != 128 && DATA_WIDTH != 256) begin
        $error("Error: DATA_WIDTH must be 64, 128 or 256 (instance %m)");
        $finish;
    end
end

reg [31:0] msg_addr_lo [0:VECTORS-1];
reg [31:0] msg_addr_hi [0:VECTORS-1];
reg [31:0] msg_data [0:VECTORS-1];
reg [VECTORS-1:0] vector_mask_reg;
reg [VECTORS-1:0] pending_reg;
reg [VECTORS-1:0] request_reg;

reg [VECTOR_WIDTH-1:0] scan_reg;

reg [127:0] tx_hdr_reg;
reg [31:0]  tx_data_reg;
reg         tx_valid_reg;

assign tx_msg_tlp_hdr = tx_hdr_reg;
assign tx_msg_tlp_data = {{(DATA_WIDTH-32){1'b0}}, tx_data_reg};
assign tx_msg_tlp_strb = {{(STRB_WIDTH-1){1'b0}}, 1'b1};
assign tx_msg_tlp_valid = tx_valid_reg;
assign tx_msg_tlp_sop = 1'b1;
assign tx_msg_tlp_eop = 1'b1;

function [31:0] merge_be(input [31:0] old_value, input [31:0] new_value, input [3:0] be);
    integer i;
    begin
        for (i = 0; i < 4; i = i + 1)
            merge_be[i*8 +: 8] = be[i] ? new_value[i*8 +: 8] : old_value[i*8 +: 8];
    end
endfunction

// table: entry = reg_addr[9:2], field = reg_addr[1:0] (address low, address high, data, vector control)
wire [7:0] entry = reg_addr[9:2];
wire entry_valid = {1'b0, entry} < VECTORS[8:0];
wire [VECTOR_WIDTH-1:0] entry_index = entry[VECTOR_WIDTH-1:0];

integer i;

always @* begin
    reg_rdata = 32'd0;
    if (table_sel && entry_valid) begin
        case (reg_addr[1:0])
            2'd0: reg_rdata = msg_addr_lo[entry_index];
            2'd1: reg_rdata = msg_addr_hi[entry_index];
            2'd2: reg_rdata = msg_data[entry_index];
            default: reg_rdata = {31'd0, vector_mask_reg[entry_index]};
        endcase
    end else if (pba_sel && reg_addr < PBA_DWORDS[9:0]) begin
        for (i = 0; i < 32; i = i + 1)
            if (reg_addr * 32 + i < VECTORS)
                reg_rdata[i] = pending_reg[reg_addr * 32 + i];
    end
end

// the vector being examined by the scanner
wire scan_active = (request_reg[scan_reg] || pending_reg[scan_reg]) && msix_enable;
wire scan_blocked = function_mask || vector_mask_reg[scan_reg] || !bus_master_enable;
wire [31:0] scan_addr_lo = msg_addr_lo[scan_reg];
wire [31:0] scan_addr_hi = msg_addr_hi[scan_reg];
wire scan_64 = scan_addr_hi != 32'd0;

always @(posedge clk) begin
    if (tx_valid_reg && tx_msg_tlp_ready)
        tx_valid_reg <= 1'b0;

    // table writes (PBA is read-only)
    if (reg_wr && table_sel && entry_valid) begin
        case (reg_addr[1:0])
            2'd0: msg_addr_lo[entry_index] <= merge_be(msg_addr_lo[entry_index], reg_wdata, reg_be) & 32'hFFFF_FFFC;
            2'd1: msg_addr_hi[entry_index] <= merge_be(msg_addr_hi[entry_index], reg_wdata, reg_be);
            2'd2: msg_data[entry_index] <= merge_be(msg_data[entry_index], reg_wdata, reg_be);
            default: if (reg_be[0]) vector_mask_reg[entry_index] <= reg_wdata[0];
        endcase
    end

    // one vector examined per cycle while the output is free
    if ((!tx_valid_reg || tx_msg_tlp_ready) && !clear) begin
        if (scan_active) begin
            if (scan_blocked) begin
                pending_reg[scan_reg] <= 1'b1;
                request_reg[scan_reg] <= 1'b0;
            end else begin
                pending_reg[scan_reg] <= 1'b0;
                request_reg[scan_reg] <= 1'b0;
                tx_valid_reg <= 1'b1;
                tx_data_reg <= msg_data[scan_reg];
                tx_hdr_reg[127:96] <= {scan_64 ? FMT_4DW_DATA : FMT_3DW_DATA, TYPE_MEM,
                                       14'd0,   // T9 TC T8 Attr LN TH TD EP Attr AT: all zero
                                       10'd1};  // Length: one dword
                tx_hdr_reg[95:64] <= {requester_id, 8'd0, 4'b0000, 4'b1111};  // tag 0, last BE 0, first BE F
                tx_hdr_reg[63:32] <= scan_64 ? scan_addr_hi : scan_addr_lo;
                tx_hdr_reg[31:0] <= scan_64 ? scan_addr_lo : 32'd0;
            end
        end
        scan_reg <= scan_reg == VECTOR_LAST ? {VECTOR_WIDTH{1'b0}} : scan_reg + 1'b1;
    end

    // new requests (ignored while MSI-X is off: the event then goes through the ISR and INTx)
    if (req_valid && msix_enable && req_vector < VECTORS[10:0])
        request_reg[req_vector[VECTOR_WIDTH-1:0]] <= 1'b1;

    // after a virtio reset no notification may go out: events not yet sent are dropped
    // (a message already handed to tx_req drains before the reset is reported done)
    if (clear) begin
        request_reg <= {VECTORS{1'b0}};
        pending_reg <= {VECTORS{1'b0}};
    end

    if (rst) begin
        vector_mask_reg <= {VECTORS{1'b1}};
        pending_reg <= {VECTORS{1'b0}};
        request_reg <= {VECTORS{1'b0}};
        scan_reg <= {VECTOR_WIDTH{1'b0}};
        tx_valid_reg <= 1'b0;
    end
end

// the table is RAM: not reset (the PCI spec leaves address and data undefined), zero at power-up
initial begin
    for (i = 0; i < VECTORS; i = i + 1) begin
        msg_addr_lo[i] = 32'd0;
        msg_addr_hi[i] = 32'd0;
        msg_data[i] = 32'd0;
    end
end

endmodule

`resetall
