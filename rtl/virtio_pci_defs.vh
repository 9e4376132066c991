// SPDX-License-Identifier: Apache-2.0
//
// Constants shared by the virtio-pci RTL, named as in Linux's uapi headers
// (virtio_pci.h, virtio_config.h, virtio_ring.h, virtio_blk.h, pci_regs.h) and
// the project's fixed BAR0 / config-space layout. Included inside module bodies.
// tb/consts/test_consts.py checks every value here against models/virtio/uapi.py.

// ---- virtio_config.h: device status bits
localparam [7:0] VIRTIO_CONFIG_S_ACKNOWLEDGE = 8'h01;
localparam [7:0] VIRTIO_CONFIG_S_DRIVER      = 8'h02;
localparam [7:0] VIRTIO_CONFIG_S_DRIVER_OK   = 8'h04;
localparam [7:0] VIRTIO_CONFIG_S_FEATURES_OK = 8'h08;
localparam [7:0] VIRTIO_CONFIG_S_NEEDS_RESET = 8'h40;
localparam [7:0] VIRTIO_CONFIG_S_FAILED      = 8'h80;

// ---- virtio_config.h / virtio_ring.h: device-independent feature bit numbers
localparam VIRTIO_RING_F_INDIRECT_DESC = 28;
localparam VIRTIO_RING_F_EVENT_IDX     = 29;
localparam VIRTIO_F_VERSION_1          = 32;
localparam VIRTIO_F_ACCESS_PLATFORM    = 33;
localparam VIRTIO_F_RING_PACKED        = 34;
localparam VIRTIO_F_IN_ORDER           = 35;
localparam VIRTIO_F_ORDER_PLATFORM     = 36;
localparam VIRTIO_F_SR_IOV             = 37;
localparam VIRTIO_F_NOTIFICATION_DATA  = 38;
localparam VIRTIO_F_NOTIF_CONFIG_DATA  = 39;
localparam VIRTIO_F_RING_RESET         = 40;
localparam VIRTIO_F_ADMIN_VQ           = 41;

// ---- virtio_blk.h: feature bit numbers
localparam VIRTIO_BLK_F_SIZE_MAX     = 1;
localparam VIRTIO_BLK_F_SEG_MAX      = 2;
localparam VIRTIO_BLK_F_GEOMETRY     = 4;
localparam VIRTIO_BLK_F_RO           = 5;
localparam VIRTIO_BLK_F_BLK_SIZE     = 6;
localparam VIRTIO_BLK_F_FLUSH        = 9;
localparam VIRTIO_BLK_F_TOPOLOGY     = 10;
localparam VIRTIO_BLK_F_CONFIG_WCE   = 11;
localparam VIRTIO_BLK_F_MQ           = 12;
localparam VIRTIO_BLK_F_DISCARD      = 13;
localparam VIRTIO_BLK_F_WRITE_ZEROES = 14;

// ---- virtio_blk.h: request types, status values, GET_ID length
localparam [31:0] VIRTIO_BLK_T_IN           = 32'd0;
localparam [31:0] VIRTIO_BLK_T_OUT          = 32'd1;
localparam [31:0] VIRTIO_BLK_T_FLUSH        = 32'd4;
localparam [31:0] VIRTIO_BLK_T_GET_ID       = 32'd8;
localparam [31:0] VIRTIO_BLK_T_GET_LIFETIME = 32'd10;
localparam [31:0] VIRTIO_BLK_T_DISCARD      = 32'd11;
localparam [31:0] VIRTIO_BLK_T_WRITE_ZEROES = 32'd13;
localparam [31:0] VIRTIO_BLK_T_SECURE_ERASE = 32'd14;
localparam [7:0]  VIRTIO_BLK_S_OK     = 8'd0;
localparam [7:0]  VIRTIO_BLK_S_IOERR  = 8'd1;
localparam [7:0]  VIRTIO_BLK_S_UNSUPP = 8'd2;
localparam VIRTIO_BLK_ID_BYTES = 20;

// ---- virtio_ids.h
localparam VIRTIO_ID_NET     = 1;
localparam VIRTIO_ID_BLOCK   = 2;
localparam VIRTIO_ID_CONSOLE = 3;
localparam VIRTIO_ID_RNG     = 4;

// ---- virtio_pci.h: capability cfg_type values
localparam [7:0] VIRTIO_PCI_CAP_COMMON_CFG = 8'd1;
localparam [7:0] VIRTIO_PCI_CAP_NOTIFY_CFG = 8'd2;
localparam [7:0] VIRTIO_PCI_CAP_ISR_CFG    = 8'd3;
localparam [7:0] VIRTIO_PCI_CAP_DEVICE_CFG = 8'd4;
localparam [7:0] VIRTIO_PCI_CAP_PCI_CFG    = 8'd5;

// ---- virtio_pci.h: common configuration byte offsets
localparam VIRTIO_PCI_COMMON_DFSELECT      = 8'h00;
localparam VIRTIO_PCI_COMMON_DF            = 8'h04;
localparam VIRTIO_PCI_COMMON_GFSELECT      = 8'h08;
localparam VIRTIO_PCI_COMMON_GF            = 8'h0C;
localparam VIRTIO_PCI_COMMON_MSIX          = 8'h10;
localparam VIRTIO_PCI_COMMON_NUMQ          = 8'h12;
localparam VIRTIO_PCI_COMMON_STATUS        = 8'h14;
localparam VIRTIO_PCI_COMMON_CFGGENERATION = 8'h15;
localparam VIRTIO_PCI_COMMON_Q_SELECT      = 8'h16;
localparam VIRTIO_PCI_COMMON_Q_SIZE        = 8'h18;
localparam VIRTIO_PCI_COMMON_Q_MSIX        = 8'h1A;
localparam VIRTIO_PCI_COMMON_Q_ENABLE      = 8'h1C;
localparam VIRTIO_PCI_COMMON_Q_NOFF        = 8'h1E;
localparam VIRTIO_PCI_COMMON_Q_DESCLO      = 8'h20;
localparam VIRTIO_PCI_COMMON_Q_DESCHI      = 8'h24;
localparam VIRTIO_PCI_COMMON_Q_AVAILLO     = 8'h28;
localparam VIRTIO_PCI_COMMON_Q_AVAILHI     = 8'h2C;
localparam VIRTIO_PCI_COMMON_Q_USEDLO      = 8'h30;
localparam VIRTIO_PCI_COMMON_Q_USEDHI      = 8'h34;
localparam VIRTIO_PCI_COMMON_Q_NDATA       = 8'h38;
localparam VIRTIO_PCI_COMMON_Q_RESET       = 8'h3A;
localparam VIRTIO_PCI_COMMON_ADM_Q_IDX     = 8'h3C;
localparam VIRTIO_PCI_COMMON_ADM_Q_NUM     = 8'h3E;

localparam [15:0] VIRTIO_MSI_NO_VECTOR = 16'hFFFF;
localparam [7:0]  VIRTIO_PCI_ISR_QUEUE  = 8'h01;
localparam [7:0]  VIRTIO_PCI_ISR_CONFIG = 8'h02;

localparam [15:0] VIRTIO_PCI_VENDOR_ID              = 16'h1AF4;
localparam [15:0] VIRTIO_PCI_MODERN_DEVICE_ID_BASE  = 16'h1040;

// ---- pci_regs.h subset
localparam [7:0] PCI_CAP_ID_EXP  = 8'h10;
localparam [7:0] PCI_CAP_ID_MSIX = 8'h11;
localparam [7:0] PCI_CAP_ID_VNDR = 8'h09;
localparam [15:0] PCI_COMMAND_MEMORY       = 16'h0002;
localparam [15:0] PCI_COMMAND_MASTER       = 16'h0004;
localparam [15:0] PCI_COMMAND_PARITY       = 16'h0040;
localparam [15:0] PCI_COMMAND_SERR         = 16'h0100;
localparam [15:0] PCI_COMMAND_INTX_DISABLE = 16'h0400;
localparam [15:0] PCI_STATUS_INTERRUPT     = 16'h0008;
localparam [15:0] PCI_STATUS_CAP_LIST      = 16'h0010;

// ---- Project layout: BAR0 (32 KiB, one 4 KiB page per structure)
localparam BAR0_APERTURE      = 15;        // log2 of the BAR0 size in bytes
localparam [31:0] BAR0_COMMON_OFFSET = 32'h0000;
localparam [31:0] BAR0_NOTIFY_OFFSET = 32'h1000;
localparam [31:0] BAR0_ISR_OFFSET    = 32'h2000;
localparam [31:0] BAR0_DEVICE_OFFSET = 32'h3000;
localparam [31:0] BAR0_MSIX_TABLE_OFFSET = 32'h4000;
localparam [31:0] BAR0_MSIX_PBA_OFFSET   = 32'h5000;
localparam [2:0]  BAR0_PAGE_COMMON = 3'd0;
localparam [2:0]  BAR0_PAGE_NOTIFY = 3'd1;
localparam [2:0]  BAR0_PAGE_ISR    = 3'd2;
localparam [2:0]  BAR0_PAGE_DEVICE = 3'd3;
localparam [2:0]  BAR0_PAGE_MSIX_TABLE = 3'd4;
localparam [2:0]  BAR0_PAGE_MSIX_PBA   = 3'd5;
localparam [31:0] COMMON_CFG_LENGTH = 32'h40;   // v1.3 layout incl. queue_reset and admin fields
localparam [31:0] ISR_CFG_LENGTH    = 32'h4;
localparam [31:0] NOTIFY_OFF_MULTIPLIER = 32'd4; // queue q rings at NOTIFY + 4*q

// ---- Project layout: capability list in config space
localparam [7:0] CAP_PCIE_PTR   = 8'h40;   // PCI Express capability (v2, endpoint), 0x3C bytes
localparam [7:0] CAP_MSIX_PTR   = 8'h80;   // MSI-X, 12 bytes
localparam [7:0] CAP_COMMON_PTR = 8'h8C;   // virtio_pci_cap, 16 bytes
localparam [7:0] CAP_NOTIFY_PTR = 8'h9C;   // virtio_pci_notify_cap, 20 bytes
localparam [7:0] CAP_ISR_PTR    = 8'hB0;   // virtio_pci_cap, 16 bytes
localparam [7:0] CAP_DEVICE_PTR = 8'hC0;   // virtio_pci_cap, 16 bytes
localparam [7:0] CAP_PCICFG_PTR = 8'hD0;   // virtio_pci_cfg_cap, 20 bytes
localparam [7:0] CAP_PCICFG_DATA = 8'hE0;  // pci_cfg_data, the window dword
