# SPDX-License-Identifier: Apache-2.0
"""Guest side of the virtio-pci testbench: PCIe host adapter, virtio driver, reference models."""
