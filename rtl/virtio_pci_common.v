// SPDX-License-Identifier: Apache-2.0

`resetall
`timescale 1ns / 1ps
`default_nettype none

/*
 * virtio PCI modern transport registers in BAR0: struct virtio_pci_common_cfg
 * (feature windows, device status and reset, config generation, per-queue
 * registers banked by queue_select, queue_reset), the notify area (one doorbell
 * per queue, NOTIFY_OFF_MULTIPLIER bytes apart: 16 bits, or 32 bits carrying the
 * driver's avail idx with VIRTIO_F_NOTIFICATION_DATA) and the ISR byte
 * (read clears; drives INTx when MSI-X is off). Interrupt events become MSI-X
 * vector requests to the msix block or ISR bits for INTx.
 */
module virtio_pci_common #
(
    // feature bits the device offers
    parameter [63:0] DEVICE_FEATURES = 64'h0000_0001_0000_0000,
    // number of virtqueues
    parameter NUM_QUEUES = 1,
    // maximum (and reset) queue size, a power of two
    parameter QUEUE_SIZE_MAX = 256,
    // number of MSI-X vectors; a vector >= this reads back VIRTIO_MSI_NO_VECTOR
    parameter MSIX_VECTORS = 2,
    // width of the queue index
    parameter QUEUE_INDEX_WIDTH = NUM_QUEUES > 1 ? $clog2(NUM_QUEUES) : 1
)
(
    input  wire                          clk,
    input  wire                          rst,

    /*
     * Register port: one dword of the common, notify or ISR page of BAR0
     */
    input  wire                          common_sel,
    input  wire                          notify_sel,
    input  wire                          isr_sel,
    input  wire [9:0]                    reg_addr,
    input  wire [3:0]                    reg_be,
    input  wire [31:0]                   reg_wdata,
    input  wire                          reg_wr,
    input  wire                          reg_rd,
    output reg  [31:0]                   reg_rdata,

    /*
     * Interrupt routing
     */
    input  wire                          msix_enable,
    input  wire                          cmd_intx_disable,
    output wire                          intx_assert,
    output wire                          intx_status,
    output reg                           msix_req_valid,
    output reg  [10:0]                   msix_req_vector,

    /*
     * Device side
     */
    input  wire                          dev_cfg_read,        // the driver read the device config (one cycle)
    input  wire                          dev_cfg_changed,     // device config changed (one cycle)
    input  wire                          dev_needs_reset,     // unrecoverable error (one cycle)
    input  wire                          dev_quiesced,        // no DMA or back-end work in flight
    output wire                          driver_ok,           // DRIVER_OK after a successful FEATURES_OK
    output wire [63:0]                   driver_features,     // the negotiated set (valid with driver_ok)
    output wire                          dev_reset,           // device reset in progress (until dev_quiesced)
    output wire [NUM_QUEUES-1:0]         queue_reset_active,  // queue reset in progress, per queue
    input  wire                          queue_irq_valid,     // used-buffer notification for a queue
    input  wire [QUEUE_INDEX_WIDTH-1:0]  queue_irq_queue,

    /*
     * Queue configuration read ports for the ring engine (combinational)
     */
    input  wire [QUEUE_INDEX_WIDTH-1:0]  eng_a_queue,
    output wire [15:0]                   eng_a_size,
    output wire [63:0]                   eng_a_desc,
    output wire [63:0]                   eng_a_driver,
    output wire [63:0]                   eng_a_device,
    output wire                          eng_a_enable,
    input  wire [QUEUE_INDEX_WIDTH-1:0]  eng_b_queue,
    output wire [15:0]                   eng_b_size,
    output wire [63:0]                   eng_b_driver,
    output wire [63:0]                   eng_b_device,
    output reg                           notify_valid, // doorbell for an enabled queue
    output reg  [QUEUE_INDEX_WIDTH-1:0]  notify_queue,
    output reg                           notify_data,  // with notify_valid: notify_idx is valid
    output reg  [15:0]                   notify_idx    // with notify_data: the driver's avail idx
);

`include "virtio_pci_defs.vh"

// the parameters at the width of the registers they are compared with (sized, so that a value
// given on the command line, e.g. verilator -GNUM_QUEUES=4, does not make a 32-bit operand)
localparam [15:0] QUEUE_SIZE_MAX_VALUE = QUEUE_SIZE_MAX[15:0];
localparam [15:0] NUM_QUEUES_VALUE = NUM_QUEUES[15:0];

initial begin
    if (QUEUE_SIZE_MAX < 1 || QUEUE_SIZE_MAX > 32768 || (QUEUE_SIZE_MAX & (QUEUE_SIZE_MAX - 1)) != 0) begin
        $error("Error: QUEUE_SIZE_MAX must be a power of two, 1..32768 (instance %m)");
        $finish;
    end
    if (DEVICE_FEATURES[VIRTIO_F_VERSION_1] != 1'b1) begin
        $error("Error: DEVICE_FEATURES must offer VIRTIO_F_VERSION_1 (instance %m)");
        $finish;
    end
    if (NUM_QUEUES < 1 || NUM_QUEUES > 1024) begin
        $error("Error: NUM_QUEUES must be 1..1024 (instance %m)");
        $finish;
    end
end

// dword numbers inside the common configuration page
localparam [9:0] DW_DFSELECT = {4'd0, VIRTIO_PCI_COMMON_DFSELECT[7:2]};
localparam [9:0] DW_DF = {4'd0, VIRTIO_PCI_COMMON_DF[7:2]};
localparam [9:0] DW_GFSELECT = {4'd0, VIRTIO_PCI_COMMON_GFSELECT[7:2]};
localparam [9:0] DW_GF = {4'd0, VIRTIO_PCI_COMMON_GF[7:2]};
localparam [9:0] DW_MSIX = {4'd0, VIRTIO_PCI_COMMON_MSIX[7:2]};      // config_msix_vector, num_queues
localparam [9:0] DW_STATUS = {4'd0, VIRTIO_PCI_COMMON_STATUS[7:2]};    // device_status, config_generation, queue_select
localparam [9:0] DW_Q_SIZE = {4'd0, VIRTIO_PCI_COMMON_Q_SIZE[7:2]};    // queue_size, queue_msix_vector
localparam [9:0] DW_Q_ENABLE = {4'd0, VIRTIO_PCI_COMMON_Q_ENABLE[7:2]};  // queue_enable, queue_notify_off
localparam [9:0] DW_Q_DESCLO = {4'd0, VIRTIO_PCI_COMMON_Q_DESCLO[7:2]};
localparam [9:0] DW_Q_DESCHI = {4'd0, VIRTIO_PCI_COMMON_Q_DESCHI[7:2]};
localparam [9:0] DW_Q_AVAILLO = {4'd0, VIRTIO_PCI_COMMON_Q_AVAILLO[7:2]};
localparam [9:0] DW_Q_AVAILHI = {4'd0, VIRTIO_PCI_COMMON_Q_AVAILHI[7:2]};
localparam [9:0] DW_Q_USEDLO = {4'd0, VIRTIO_PCI_COMMON_Q_USEDLO[7:2]};
localparam [9:0] DW_Q_USEDHI = {4'd0, VIRTIO_PCI_COMMON_Q_USEDHI[7:2]};
localparam [9:0] DW_Q_NDATA = {4'd0, VIRTIO_PCI_COMMON_Q_NDATA[7:2]};   // queue_notif_config_data, queue_reset

localparam OFFER_RING_RESET = DEVICE_FEATURES[VIRTIO_F_RING_RESET];
localparam OFFER_NOTIFICATION_DATA = DEVICE_FEATURES[VIRTIO_F_NOTIFICATION_DATA];

// ---- device-level state
reg [31:0] device_feature_select_reg;
reg [31:0] driver_feature_select_reg;
reg [63:0] driver_features_reg;
reg [15:0] config_msix_vector_reg;
reg [7:0]  device_status_reg;
reg        reset_pending_reg;
reg [7:0]  config_generation_reg;
// set by any read of the device config or of config_generation: the next change must bump the
// generation; cleared by the bump. A change the driver cannot have seen yet does not bump it
// again, so 256 changes between two driver reads can never wrap it back to the old value.
reg        config_observed_reg;
reg [15:0] queue_select_reg;
reg [1:0]  isr_reg;

// ---- per-queue state, banked by queue_select
reg [15:0] queue_size_reg [0:NUM_QUEUES-1];
reg [15:0] queue_msix_vector_reg [0:NUM_QUEUES-1];
reg        queue_enable_reg [0:NUM_QUEUES-1];
reg        queue_reset_reg [0:NUM_QUEUES-1];
reg [63:0] queue_desc_reg [0:NUM_QUEUES-1];
reg [63:0] queue_driver_reg [0:NUM_QUEUES-1];
reg [63:0] queue_device_reg [0:NUM_QUEUES-1];

wire features_ok = device_status_reg[3];
wire ring_reset_negotiated = OFFER_RING_RESET && features_ok && driver_features_reg[VIRTIO_F_RING_RESET];
wire notification_data_negotiated = OFFER_NOTIFICATION_DATA && features_ok &&
                                    driver_features_reg[VIRTIO_F_NOTIFICATION_DATA];

assign driver_ok = device_status_reg[2] && features_ok && !reset_pending_reg;
assign driver_features = driver_features_reg;
assign dev_reset = reset_pending_reg;

genvar gq;
generate
    for (gq = 0; gq < NUM_QUEUES; gq = gq + 1) begin : g_queue_reset
        assign queue_reset_active[gq] = queue_reset_reg[gq];
    end
endgenerate

assign eng_a_size = queue_size_reg[eng_a_queue];
assign eng_a_desc = queue_desc_reg[eng_a_queue];
assign eng_a_driver = queue_driver_reg[eng_a_queue];
assign eng_a_device = queue_device_reg[eng_a_queue];
assign eng_a_enable = queue_enable_reg[eng_a_queue];
assign eng_b_size = queue_size_reg[eng_b_queue];
assign eng_b_driver = queue_driver_reg[eng_b_queue];
assign eng_b_device = queue_device_reg[eng_b_queue];

// a queue notification that collides with a config notification waits one cycle
reg        queue_irq_pending_reg;
reg [QUEUE_INDEX_WIDTH-1:0] queue_irq_pending_queue_reg;

assign intx_status = !msix_enable && isr_reg != 2'b00;
assign intx_assert = intx_status && !cmd_intx_disable;

// the selected queue
wire queue_valid = queue_select_reg < NUM_QUEUES_VALUE;
wire [QUEUE_INDEX_WIDTH-1:0] qsel = queue_select_reg[QUEUE_INDEX_WIDTH-1:0];

function [31:0] merge_be(input [31:0] old_value, input [31:0] new_value, input [3:0] be);
    integer i;
    begin
        for (i = 0; i < 4; i = i + 1)
            merge_be[i*8 +: 8] = be[i] ? new_value[i*8 +: 8] : old_value[i*8 +: 8];
    end
endfunction

// a vector the MSI-X table cannot hold reads back as "no vector" (mapping failed)
function [15:0] valid_vector(input [15:0] vector);
    valid_vector = vector < MSIX_VECTORS[15:0] ? vector : VIRTIO_MSI_NO_VECTOR;
endfunction

// a queue size is accepted if it is a non-zero power of two no larger than the maximum
function size_ok(input [15:0] size);
    size_ok = size != 16'd0 && (size & (size - 16'd1)) == 16'd0 && size <= QUEUE_SIZE_MAX_VALUE;
endfunction

// ---- read mux
wire [31:0] device_feature_word = device_feature_select_reg == 32'd0 ? DEVICE_FEATURES[31:0] :
                                  device_feature_select_reg == 32'd1 ? DEVICE_FEATURES[63:32] : 32'd0;
wire [31:0] driver_feature_word = driver_feature_select_reg == 32'd0 ? driver_features_reg[31:0] :
                                  driver_feature_select_reg == 32'd1 ? driver_features_reg[63:32] : 32'd0;
wire [15:0] num_queues_value = NUM_QUEUES_VALUE;
wire [15:0] q_size_value = queue_valid ? queue_size_reg[qsel] : 16'd0;
wire [15:0] q_msix_value = queue_valid ? queue_msix_vector_reg[qsel] : VIRTIO_MSI_NO_VECTOR;
wire [15:0] q_enable_value = queue_valid ? {15'd0, queue_enable_reg[qsel]} : 16'd0;
wire [15:0] q_notify_off_value = queue_valid ? queue_select_reg : 16'd0;
wire [63:0] q_desc_value = queue_valid ? queue_desc_reg[qsel] : 64'd0;
wire [63:0] q_driver_value = queue_valid ? queue_driver_reg[qsel] : 64'd0;
wire [63:0] q_device_value = queue_valid ? queue_device_reg[qsel] : 64'd0;
wire [15:0] q_reset_value = (queue_valid && ring_reset_negotiated) ? {15'd0, queue_reset_reg[qsel]} : 16'd0;
// while a reset is in progress device_status keeps its old value: it reads 0 once the reset is done
wire [31:0] status_dword = {queue_select_reg, config_generation_reg, device_status_reg};

always @* begin
    reg_rdata = 32'd0;
    if (common_sel) begin
        case (reg_addr)
            DW_DFSELECT:  reg_rdata = device_feature_select_reg;
            DW_DF:        reg_rdata = device_feature_word;
            DW_GFSELECT:  reg_rdata = driver_feature_select_reg;
            DW_GF:        reg_rdata = driver_feature_word;
            DW_MSIX:      reg_rdata = {num_queues_value, config_msix_vector_reg};
            DW_STATUS:    reg_rdata = status_dword;
            DW_Q_SIZE:    reg_rdata = {q_msix_value, q_size_value};
            DW_Q_ENABLE:  reg_rdata = {q_notify_off_value, q_enable_value};
            DW_Q_DESCLO:  reg_rdata = q_desc_value[31:0];
            DW_Q_DESCHI:  reg_rdata = q_desc_value[63:32];
            DW_Q_AVAILLO: reg_rdata = q_driver_value[31:0];
            DW_Q_AVAILHI: reg_rdata = q_driver_value[63:32];
            DW_Q_USEDLO:  reg_rdata = q_device_value[31:0];
            DW_Q_USEDHI:  reg_rdata = q_device_value[63:32];
            DW_Q_NDATA:   reg_rdata = {q_reset_value, 16'd0};   // queue_notif_config_data not offered
            default:      reg_rdata = 32'd0;                    // admin queue fields: not offered
        endcase
    end else if (isr_sel) begin
        reg_rdata = reg_addr == 10'd0 ? {30'd0, isr_reg} : 32'd0;
    end
end

// ---- write decode
wire wr_common = reg_wr && common_sel;
wire [31:0] msix_dw_next   = merge_be({16'd0, config_msix_vector_reg}, reg_wdata, reg_be);
wire [31:0] status_dw_next = merge_be(status_dword, reg_wdata, reg_be);
wire [31:0] q_size_dw_next = merge_be({q_msix_value, q_size_value}, reg_wdata, reg_be);
wire [31:0] q_enable_dw_next = merge_be({q_notify_off_value, q_enable_value}, reg_wdata, reg_be);
wire [31:0] q_reset_dw_next = merge_be({q_reset_value, 16'd0}, reg_wdata, reg_be);

wire write_status = wr_common && reg_addr == DW_STATUS && reg_be[0];
wire [7:0] status_written = status_dw_next[7:0];
// FEATURES_OK sticks only if every accepted feature was offered and VERSION_1 is among them
wire features_acceptable = (driver_features_reg & ~DEVICE_FEATURES) == 64'd0 &&
                           driver_features_reg[VIRTIO_F_VERSION_1];
wire [7:0] status_features_checked = (status_written[3] && !features_ok && !features_acceptable) ?
                                     (status_written & ~VIRTIO_CONFIG_S_FEATURES_OK) : status_written;
// queue configuration is frozen while the queue is enabled or being reset
wire q_writable = queue_valid && !queue_enable_reg[qsel] && !queue_reset_reg[qsel] && !reset_pending_reg;

// ---- reads with side effects
wire read_isr = reg_rd && isr_sel && reg_addr == 10'd0 && reg_be[0];
wire read_generation = reg_rd && common_sel && reg_addr == DW_STATUS && reg_be[1];

// ---- interrupt events
wire config_event = dev_cfg_changed || dev_needs_reset;
// config notifications go out only once the driver is up (as QEMU does); the generation still moves
wire config_notify = config_event && device_status_reg[2] && !reset_pending_reg;

integer q;

always @(posedge clk) begin
    msix_req_valid <= 1'b0;
    notify_valid <= 1'b0;

    // ---- register writes
    if (wr_common) begin
        case (reg_addr)
            DW_DFSELECT: device_feature_select_reg <= merge_be(device_feature_select_reg, reg_wdata, reg_be);
            DW_GFSELECT: driver_feature_select_reg <= merge_be(driver_feature_select_reg, reg_wdata, reg_be);
            DW_GF: begin
                // the accepted set is latched at FEATURES_OK; later writes are ignored
                if (!features_ok && !reset_pending_reg) begin
                    if (driver_feature_select_reg == 32'd0)
                        driver_features_reg[31:0] <= merge_be(driver_features_reg[31:0], reg_wdata, reg_be);
                    else if (driver_feature_select_reg == 32'd1)
                        driver_features_reg[63:32] <= merge_be(driver_features_reg[63:32], reg_wdata, reg_be);
                end
            end
            DW_MSIX: begin
                if (reg_be[1:0] != 2'b00 && !reset_pending_reg)
                    config_msix_vector_reg <= valid_vector(msix_dw_next[15:0]);
            end
            DW_STATUS: begin
                if (reg_be[3:2] != 2'b00 && !reset_pending_reg)
                    queue_select_reg <= status_dw_next[31:16];
            end
            DW_Q_SIZE: begin
                if (reg_be[1:0] != 2'b00 && q_writable && size_ok(q_size_dw_next[15:0]))
                    queue_size_reg[qsel] <= q_size_dw_next[15:0];
                if (reg_be[3:2] != 2'b00 && queue_valid && !reset_pending_reg)
                    queue_msix_vector_reg[qsel] <= valid_vector(q_size_dw_next[31:16]);
            end
            DW_Q_ENABLE: begin
                // only 1 is meaningful: the driver never writes 0, and a queue is disabled by reset
                if (reg_be[1:0] != 2'b00 && q_writable && q_enable_dw_next[0])
                    queue_enable_reg[qsel] <= 1'b1;
            end
            DW_Q_DESCLO:  if (q_writable) queue_desc_reg[qsel][31:0]    <= merge_be(q_desc_value[31:0], reg_wdata, reg_be);
            DW_Q_DESCHI:  if (q_writable) queue_desc_reg[qsel][63:32]   <= merge_be(q_desc_value[63:32], reg_wdata, reg_be);
            DW_Q_AVAILLO: if (q_writable) queue_driver_reg[qsel][31:0]  <= merge_be(q_driver_value[31:0], reg_wdata, reg_be);
            DW_Q_AVAILHI: if (q_writable) queue_driver_reg[qsel][63:32] <= merge_be(q_driver_value[63:32], reg_wdata, reg_be);
            DW_Q_USEDLO:  if (q_writable) queue_device_reg[qsel][31:0]  <= merge_be(q_device_value[31:0], reg_wdata, reg_be);
            DW_Q_USEDHI:  if (q_writable) queue_device_reg[qsel][63:32] <= merge_be(q_device_value[63:32], reg_wdata, reg_be);
            DW_Q_NDATA: begin
                if (reg_be[3:2] != 2'b00 && ring_reset_negotiated && queue_valid && q_reset_dw_next[16])
                    queue_reset_reg[qsel] <= 1'b1;
            end
            default: ;
        endcase
    end

    // ---- device status: 0 starts a reset, anything else is recorded (FEATURES_OK checked)
    if (write_status && !reset_pending_reg) begin
        if (status_written == 8'd0) begin
            reset_pending_reg <= 1'b1;
        end else begin
            // DEVICE_NEEDS_RESET belongs to the device: the driver can neither set nor clear it
            device_status_reg <= (status_features_checked & ~VIRTIO_CONFIG_S_NEEDS_RESET) |
                                 (device_status_reg & VIRTIO_CONFIG_S_NEEDS_RESET);
        end
    end

    // ---- queue reset completes once nothing is in flight (the engine quiesces the queue)
    for (q = 0; q < NUM_QUEUES; q = q + 1) begin
        if (queue_reset_reg[q] && dev_quiesced) begin
            queue_reset_reg[q] <= 1'b0;
            queue_enable_reg[q] <= 1'b0;
            queue_size_reg[q] <= QUEUE_SIZE_MAX_VALUE;
            queue_msix_vector_reg[q] <= VIRTIO_MSI_NO_VECTOR;
            queue_desc_reg[q] <= 64'd0;
            queue_driver_reg[q] <= 64'd0;
            queue_device_reg[q] <= 64'd0;
        end
    end

    // ---- doorbells: a 16-bit (or wider) write anywhere in the queue's notify slot. With
    // NOTIFICATION_DATA a write that also enables bytes 3:2 carries next_wrap:next_off there, for
    // a split ring the driver's 16-bit avail idx (spec 2.9); the vq index in bits 15:0 is not
    // checked (the slot names the queue)
    if (reg_wr && notify_sel && reg_be[1:0] != 2'b00 && {6'd0, reg_addr} < NUM_QUEUES_VALUE) begin
        if (driver_ok && queue_enable_reg[reg_addr[QUEUE_INDEX_WIDTH-1:0]] &&
                !queue_reset_reg[reg_addr[QUEUE_INDEX_WIDTH-1:0]]) begin
            notify_valid <= 1'b1;
            notify_queue <= reg_addr[QUEUE_INDEX_WIDTH-1:0];
            notify_data <= notification_data_negotiated && reg_be[3:2] == 2'b11;
            notify_idx <= reg_wdata[31:16];
        end
    end

    // ---- ISR: read clears
    if (read_isr)
        isr_reg <= 2'b00;

    // ---- config generation and config-change notification
    if (read_generation || dev_cfg_read)
        config_observed_reg <= 1'b1;
    if (config_event && config_observed_reg) begin
        config_generation_reg <= config_generation_reg + 8'd1;
        config_observed_reg <= 1'b0;
    end
    if (dev_needs_reset && !reset_pending_reg)
        device_status_reg <= device_status_reg | VIRTIO_CONFIG_S_NEEDS_RESET;
    // ---- used-buffer notifications: MSI-X on the queue's vector, or ISR bit 0 for INTx
    if (queue_irq_valid) begin
        queue_irq_pending_reg <= 1'b1;
        queue_irq_pending_queue_reg <= queue_irq_queue;
    end
    if (queue_irq_pending_reg && !config_notify) begin
        queue_irq_pending_reg <= queue_irq_valid;
        if (!msix_enable) begin
            isr_reg[0] <= 1'b1;
        end else if (queue_msix_vector_reg[queue_irq_pending_queue_reg] != VIRTIO_MSI_NO_VECTOR) begin
            msix_req_valid <= 1'b1;
            msix_req_vector <= queue_msix_vector_reg[queue_irq_pending_queue_reg][10:0];
        end
    end

    if (config_notify) begin
        // ISR bit 1 is set before any config notification, also in MSI-X mode
        isr_reg[1] <= 1'b1;
        if (msix_enable && config_msix_vector_reg != VIRTIO_MSI_NO_VECTOR) begin
            msix_req_valid <= 1'b1;
            msix_req_vector <= config_msix_vector_reg[10:0];
        end
    end

    // ---- device reset: completes once nothing is in flight, then everything returns to defaults
    if (reset_pending_reg && dev_quiesced) begin
        reset_pending_reg <= 1'b0;
        device_status_reg <= 8'd0;
        device_feature_select_reg <= 32'd0;
        driver_feature_select_reg <= 32'd0;
        driver_features_reg <= 64'd0;
        config_msix_vector_reg <= VIRTIO_MSI_NO_VECTOR;
        queue_select_reg <= 16'd0;
        isr_reg <= 2'b00;
        queue_irq_pending_reg <= 1'b0;
        for (q = 0; q < NUM_QUEUES; q = q + 1) begin
            queue_size_reg[q] <= QUEUE_SIZE_MAX_VALUE;
            queue_msix_vector_reg[q] <= VIRTIO_MSI_NO_VECTOR;
            queue_enable_reg[q] <= 1'b0;
            queue_reset_reg[q] <= 1'b0;
            queue_desc_reg[q] <= 64'd0;
            queue_driver_reg[q] <= 64'd0;
            queue_device_reg[q] <= 64'd0;
        end
    end

    if (rst) begin
        device_feature_select_reg <= 32'd0;
        driver_feature_select_reg <= 32'd0;
        driver_features_reg <= 64'd0;
        config_msix_vector_reg <= VIRTIO_MSI_NO_VECTOR;
        device_status_reg <= 8'd0;
        reset_pending_reg <= 1'b0;
        config_generation_reg <= 8'd0;
        config_observed_reg <= 1'b0;
        queue_select_reg <= 16'd0;
        isr_reg <= 2'b00;
        msix_req_valid <= 1'b0;
        notify_valid <= 1'b0;
        notify_data <= 1'b0;
        notify_idx <= 16'd0;
        queue_irq_pending_reg <= 1'b0;
        for (q = 0; q < NUM_QUEUES; q = q + 1) begin
            queue_size_reg[q] <= QUEUE_SIZE_MAX_VALUE;
            queue_msix_vector_reg[q] <= VIRTIO_MSI_NO_VECTOR;
            queue_enable_reg[q] <= 1'b0;
            queue_reset_reg[q] <= 1'b0;
            queue_desc_reg[q] <= 64'd0;
            queue_driver_reg[q] <= 64'd0;
            queue_device_reg[q] <= 64'd0;
        end
    end
end

endmodule

`resetall
