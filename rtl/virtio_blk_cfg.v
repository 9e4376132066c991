// SPDX-License-Identifier: Apache-2.0

`resetall
`timescale 1ns / 1ps
`default_nettype none

/*
 * struct virtio_blk_config as a register block (device config page of BAR0).
 * Every field is read-only for the driver; writes are ignored. The capacity
 * can be changed at run time (a resize): the block then reports a config
 * change, which bumps config_generation and raises the config interrupt.
 */
module virtio_blk_cfg #
(
    // capacity at reset, in 512-byte sectors
    parameter [63:0] CAPACITY = 64'd2048,
    // maximum segment size in bytes (VIRTIO_BLK_F_SIZE_MAX)
    parameter [31:0] SIZE_MAX = 32'd65536,
    // maximum number of data segments per request (VIRTIO_BLK_F_SEG_MAX)
    parameter [31:0] SEG_MAX = 32'd64,
    // logical block size (VIRTIO_BLK_F_BLK_SIZE)
    parameter [31:0] BLK_SIZE = 32'd512,
    // number of request queues (VIRTIO_BLK_F_MQ)
    parameter [15:0] NUM_QUEUES = 16'd1
)
(
    input  wire         clk,
    input  wire         rst,

    /*
     * Register port (dword of the device config page)
     */
    input  wire [9:0]   reg_addr,
    output reg  [31:0]  reg_rdata,

    /*
     * Resize
     */
    input  wire         capacity_valid,
    input  wire [63:0]  capacity,
    output wire [63:0]  capacity_current,
    output reg          cfg_changed
);

reg [63:0] capacity_reg;

assign capacity_current = capacity_reg;

always @* begin
    case (reg_addr)
        10'd0:  reg_rdata = capacity_reg[31:0];          // capacity
        10'd1:  reg_rdata = capacity_reg[63:32];
        10'd2:  reg_rdata = SIZE_MAX;                    // size_max
        10'd3:  reg_rdata = SEG_MAX;                     // seg_max
        10'd4:  reg_rdata = 32'd0;                       // geometry: not offered
        10'd5:  reg_rdata = BLK_SIZE;                    // blk_size
        10'd6:  reg_rdata = 32'd0;                       // topology: not offered
        10'd7:  reg_rdata = 32'd0;
        10'd8:  reg_rdata = {NUM_QUEUES, 8'd0, 8'd0};    // writeback 0, unused0 0, num_queues
        default: reg_rdata = 32'd0;                      // discard, write zeroes, unused1: not offered
    endcase
end

always @(posedge clk) begin
    cfg_changed <= 1'b0;
    if (capacity_valid && capacity != capacity_reg) begin
        capacity_reg <= capacity;
        cfg_changed <= 1'b1;
    end

    if (rst) begin
        capacity_reg <= CAPACITY;
        cfg_changed <= 1'b0;
    end
end

endmodule

`resetall
