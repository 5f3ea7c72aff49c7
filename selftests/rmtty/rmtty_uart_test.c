// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty's UART at BAR0 and its interrupts, through both VFIO front doors:
 * loopback, line and modem status, the divisor latch, INTx and MSI through
 * eventfds, reset, two devices side by side, and concurrent accesses.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <linux/serial_reg.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "rmtty_util.h"
#include "rmtty_vfio.h"

#define FIFO_SIZE	16
/* LSR with nothing received: transmitter empty */
#define LSR_IDLE	(UART_LSR_THRE | UART_LSR_TEMT)
/* IIR with the FIFOs enabled */
#define IIR_FIFO	0xc0

FIXTURE(uart) {
	char uuid[UUID_LEN + 1];
	struct rmtty_vfio v;
	int device;
	int eventfd;
};

FIXTURE_VARIANT(uart) {
	bool cdev;
};

FIXTURE_VARIANT_ADD(uart, group) { .cdev = false };
FIXTURE_VARIANT_ADD(uart, iommufd) { .cdev = true };

FIXTURE_SETUP(uart)
{
	unsigned int units, unit_mib;
	struct rmtty_params p = { 0, 0 };

	self->v = (struct rmtty_vfio)RMTTY_VFIO_INIT;
	self->eventfd = -1;
	rmtty_require_reload(_metadata, &p, &units, &unit_mib);
	rmtty_uuid(self->uuid, 1);
	ASSERT_EQ(0, rmtty_create(1, self->uuid));
	ASSERT_EQ(0, rmtty_vfio_open(&self->v, self->uuid, variant->cdev));
	self->device = self->v.device;
	self->eventfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ASSERT_LE(0, self->eventfd);
}

FIXTURE_TEARDOWN(uart)
{
	if (self->eventfd >= 0)
		close(self->eventfd);
	rmtty_vfio_close(&self->v);
	rmtty_expect_cleanup(_metadata);
}

/* How many times @eventfd was signalled since last asked. */
static __u64 fired(int eventfd)
{
	__u64 count;

	return read(eventfd, &count, sizeof(count)) == sizeof(count) ? count : 0;
}

/* The UART's power-on state: FIFO off, nothing received or pending, lines low. */
static void expect_power_on(struct __test_metadata *_metadata, int device)
{
	const __u8 zero[] = { UART_IER, UART_LCR, UART_MCR, UART_MSR, UART_SCR };
	unsigned int i, reg;

	EXPECT_EQ(LSR_IDLE, bar0_read(device, UART_LSR));
	EXPECT_EQ(UART_IIR_NO_INT, bar0_read(device, UART_IIR));
	for (i = 0; i < sizeof(zero); i++) {
		reg = zero[i];
		EXPECT_EQ(0, bar0_read(device, reg)) TH_LOG("register %u", reg);
	}
	ASSERT_EQ(0, bar0_write(device, UART_LCR, UART_LCR_DLAB));
	EXPECT_EQ(0, bar0_read(device, UART_DLL));
	EXPECT_EQ(0, bar0_read(device, UART_DLM));
	ASSERT_EQ(0, bar0_write(device, UART_LCR, 0));
}

TEST_F(uart, irq_info)
{
	const struct { __u32 flags, count; } expected[VFIO_PCI_NUM_IRQS] = {
		[VFIO_PCI_INTX_IRQ_INDEX] = { VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE |
					      VFIO_IRQ_INFO_AUTOMASKED, 1 },
		[VFIO_PCI_MSI_IRQ_INDEX] = { VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, 1 },
	};
	struct vfio_irq_info info;
	__u32 i;

	for (i = 0; i < VFIO_PCI_NUM_IRQS; i++) {
		info = (struct vfio_irq_info){ .argsz = sizeof(info), .index = i };
		ASSERT_EQ(0, ioctl(self->device, VFIO_DEVICE_GET_IRQ_INFO, &info))
			TH_LOG("index %u: %s", i, strerror(errno));
		EXPECT_EQ(expected[i].flags, info.flags) TH_LOG("index %u", i);
		EXPECT_EQ(expected[i].count, info.count) TH_LOG("index %u", i);
		EXPECT_EQ(i, info.index);
	}

	info = (struct vfio_irq_info){ .argsz = sizeof(info), .index = VFIO_PCI_NUM_IRQS };
	EXPECT_EQ(-1, ioctl(self->device, VFIO_DEVICE_GET_IRQ_INFO, &info));
	EXPECT_EQ(EINVAL, errno);
	info = (struct vfio_irq_info){ .argsz = 12, .index = VFIO_PCI_INTX_IRQ_INDEX };
	EXPECT_EQ(-1, ioctl(self->device, VFIO_DEVICE_GET_IRQ_INFO, &info));
	EXPECT_EQ(EINVAL, errno);
}

/* Bad requests fail with the uAPI's errno and leave INTx as it was set up. */
TEST_F(uart, set_irqs_refused)
{
	const __u32 trigger_fd = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	const __u32 intx = VFIO_PCI_INTX_IRQ_INDEX, msi = VFIO_PCI_MSI_IRQ_INDEX;
	__s32 fds[2] = { self->eventfd, self->eventfd };
	__u8 yes = 1;

	ASSERT_EQ(0, set_eventfd(self->device, intx, self->eventfd));

	EXPECT_EQ(-EINVAL, set_eventfd(self->device, msi, self->eventfd));	/* INTx is on */
	EXPECT_EQ(-EINVAL, set_eventfd(self->device, VFIO_PCI_MSIX_IRQ_INDEX, self->eventfd));
	EXPECT_EQ(-EINVAL, set_eventfd(self->device, VFIO_PCI_NUM_IRQS, self->eventfd));
	EXPECT_EQ(-EINVAL, set_irqs(self->device, trigger_fd, intx, 1, 1, fds, 4));
	EXPECT_EQ(-EINVAL, set_irqs(self->device, trigger_fd, intx, 0, 2, fds, 8));
	/* Two data types, two actions, an unknown flag */
	EXPECT_EQ(-EINVAL, set_irqs(self->device, trigger_fd | VFIO_IRQ_SET_DATA_BOOL, intx,
				    0, 1, fds, 4));
	EXPECT_EQ(-EINVAL, set_irqs(self->device, trigger_fd | VFIO_IRQ_SET_ACTION_MASK, intx,
				    0, 1, fds, 4));
	EXPECT_EQ(-EINVAL, set_irqs(self->device, trigger_fd | 1u << 15, intx, 0, 1, fds, 4));
	/* argsz too small for the data */
	EXPECT_EQ(-EINVAL, set_irqs(self->device, trigger_fd, intx, 0, 1, fds, 2));
	/* A descriptor that is not open, one that is not an eventfd */
	EXPECT_EQ(-EBADF, set_eventfd(self->device, intx, 1000));
	EXPECT_EQ(-EINVAL, set_eventfd(self->device, intx, self->device));
	/* MSI is not maskable, and nothing is unmasked through an eventfd */
	EXPECT_EQ(-ENOTTY, irq_action(self->device, msi, VFIO_IRQ_SET_ACTION_MASK));
	EXPECT_EQ(-ENOTTY, set_irqs(self->device, VFIO_IRQ_SET_DATA_EVENTFD |
				    VFIO_IRQ_SET_ACTION_UNMASK, intx, 0, 1, fds, 4));
	/* A loopback trigger or a teardown of an index that is not set up */
	EXPECT_EQ(-EINVAL, set_irqs(self->device, VFIO_IRQ_SET_DATA_BOOL |
				    VFIO_IRQ_SET_ACTION_TRIGGER, msi, 0, 1, &yes, 1));
	EXPECT_EQ(-EINVAL, set_irqs(self->device, VFIO_IRQ_SET_DATA_NONE |
				    VFIO_IRQ_SET_ACTION_TRIGGER, msi, 0, 0, NULL, 0));

	/* INTx still signals the eventfd */
	EXPECT_EQ(0, fired(self->eventfd));
	EXPECT_EQ(0, set_irqs(self->device, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER,
			      intx, 0, 1, &yes, 1));
	EXPECT_EQ(1, fired(self->eventfd));
}

TEST_F(uart, loopback_and_line_status)
{
	const char text[] = "rmtty";
	__u8 regs[8];
	unsigned int i;

	expect_power_on(_metadata, self->device);

	ASSERT_EQ(0, bar0_write(self->device, UART_FCR, UART_FCR_ENABLE_FIFO |
				UART_FCR_CLEAR_RCVR | UART_FCR_CLEAR_XMIT));
	EXPECT_EQ(IIR_FIFO | UART_IIR_NO_INT, bar0_read(self->device, UART_IIR));

	/* The transmitter stays empty: the line takes each byte at once */
	for (i = 0; i < sizeof(text) - 1; i++)
		ASSERT_EQ(0, bar0_write(self->device, UART_TX, text[i]));
	EXPECT_EQ(LSR_IDLE | UART_LSR_DR, bar0_read(self->device, UART_LSR));
	for (i = 0; i < sizeof(text) - 1; i++)
		EXPECT_EQ(text[i], bar0_read(self->device, UART_RX));
	EXPECT_EQ(LSR_IDLE, bar0_read(self->device, UART_LSR));

	/* A wide access is one register per byte lane */
	ASSERT_EQ(0, bar0_write(self->device, UART_SCR, 0x5a));
	ASSERT_EQ(0, bar0_write(self->device, UART_TX, 'x'));
	ASSERT_EQ(8, pread(self->device, regs, 8, BAR0_OFFSET));
	EXPECT_EQ('x', regs[UART_RX]);
	EXPECT_EQ(LSR_IDLE, regs[UART_LSR]);	/* the RX lane came first */
	EXPECT_EQ(0x5a, regs[UART_SCR]);
}

TEST_F(uart, fifo_overrun_and_clear)
{
	unsigned int i;

	ASSERT_EQ(0, bar0_write(self->device, UART_FCR, UART_FCR_ENABLE_FIFO));
	for (i = 0; i < FIFO_SIZE; i++)
		ASSERT_EQ(0, bar0_write(self->device, UART_TX, i));
	EXPECT_EQ(LSR_IDLE | UART_LSR_DR, bar0_read(self->device, UART_LSR));
	/* One more is lost and flags an overrun, which reading LSR clears */
	ASSERT_EQ(0, bar0_write(self->device, UART_TX, 0xee));
	EXPECT_EQ(LSR_IDLE | UART_LSR_DR | UART_LSR_OE, bar0_read(self->device, UART_LSR));
	EXPECT_EQ(LSR_IDLE | UART_LSR_DR, bar0_read(self->device, UART_LSR));
	for (i = 0; i < FIFO_SIZE; i++)
		EXPECT_EQ(i, bar0_read(self->device, UART_RX));
	EXPECT_EQ(LSR_IDLE, bar0_read(self->device, UART_LSR));

	/* Clearing the FIFO drops what it holds */
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, bar0_write(self->device, UART_TX, i));
	ASSERT_EQ(0, bar0_write(self->device, UART_FCR, UART_FCR_ENABLE_FIFO |
				UART_FCR_CLEAR_RCVR));
	EXPECT_EQ(LSR_IDLE, bar0_read(self->device, UART_LSR));

	/* Without the FIFO, the port holds one byte: a new one replaces it */
	ASSERT_EQ(0, bar0_write(self->device, UART_FCR, 0));
	ASSERT_EQ(0, bar0_write(self->device, UART_TX, 'a'));
	ASSERT_EQ(0, bar0_write(self->device, UART_TX, 'b'));
	EXPECT_EQ(LSR_IDLE | UART_LSR_DR | UART_LSR_OE, bar0_read(self->device, UART_LSR));
	EXPECT_EQ('b', bar0_read(self->device, UART_RX));
	EXPECT_EQ(LSR_IDLE, bar0_read(self->device, UART_LSR));
}

TEST_F(uart, divisor_latch)
{
	ASSERT_EQ(0, bar0_write(self->device, UART_IER, 0xff));
	EXPECT_EQ(0x0f, bar0_read(self->device, UART_IER));	/* four interrupt enables */
	ASSERT_EQ(0, bar0_write(self->device, UART_IER, UART_IER_RDI | UART_IER_RLSI));

	/* With DLAB, offsets 0 and 1 are the divisor: 0x010c */
	ASSERT_EQ(0, bar0_write(self->device, UART_LCR, UART_LCR_DLAB | UART_LCR_WLEN8));
	ASSERT_EQ(0, bar0_write(self->device, UART_DLL, 0x0c));
	ASSERT_EQ(0, bar0_write(self->device, UART_DLM, 0x01));
	EXPECT_EQ(0x0c, bar0_read(self->device, UART_DLL));
	EXPECT_EQ(0x01, bar0_read(self->device, UART_DLM));
	/* Nothing was transmitted, IER is untouched */
	EXPECT_EQ(LSR_IDLE, bar0_read(self->device, UART_LSR));
	ASSERT_EQ(0, bar0_write(self->device, UART_LCR, UART_LCR_WLEN8));
	EXPECT_EQ(UART_LCR_WLEN8, bar0_read(self->device, UART_LCR));
	EXPECT_EQ(UART_IER_RDI | UART_IER_RLSI, bar0_read(self->device, UART_IER));

	/* Without DLAB they are the data and IER again; the divisor stays */
	ASSERT_EQ(0, bar0_write(self->device, UART_TX, 0x42));
	EXPECT_EQ(0x42, bar0_read(self->device, UART_RX));
	ASSERT_EQ(0, bar0_write(self->device, UART_LCR, UART_LCR_DLAB | UART_LCR_WLEN8));
	EXPECT_EQ(0x0c, bar0_read(self->device, UART_DLL));
	EXPECT_EQ(0x01, bar0_read(self->device, UART_DLM));
}

TEST_F(uart, modem_control_and_status)
{
	/* The line has a loopback plug: RTS to CTS, DTR to DSR and DCD */
	ASSERT_EQ(0, bar0_write(self->device, UART_MCR, UART_MCR_DTR | UART_MCR_RTS));
	EXPECT_EQ(UART_MSR_CTS | UART_MSR_DSR | UART_MSR_DCD |
		  UART_MSR_DCTS | UART_MSR_DDSR | UART_MSR_DDCD,
		  bar0_read(self->device, UART_MSR));
	/* Reading MSR clears the deltas */
	EXPECT_EQ(UART_MSR_CTS | UART_MSR_DSR | UART_MSR_DCD, bar0_read(self->device, UART_MSR));

	/* MCR loopback, as the 8250 driver probes it: RTS|OUT2 gives CTS|DCD */
	ASSERT_EQ(0, bar0_write(self->device, UART_MCR, UART_MCR_LOOP | UART_MCR_RTS |
				UART_MCR_OUT2));
	EXPECT_EQ(UART_MSR_CTS | UART_MSR_DCD, bar0_read(self->device, UART_MSR) & 0xf0);
	ASSERT_EQ(0, bar0_write(self->device, UART_MCR, UART_MCR_LOOP | UART_MCR_OUT1));
	EXPECT_EQ(UART_MSR_RI, bar0_read(self->device, UART_MSR) & 0xf0);
	/* Ring is reported on its trailing edge */
	ASSERT_EQ(0, bar0_write(self->device, UART_MCR, UART_MCR_LOOP));
	EXPECT_EQ(UART_MSR_TERI, bar0_read(self->device, UART_MSR) & UART_MSR_TERI);

	ASSERT_EQ(0, bar0_write(self->device, UART_MCR, 0xff));
	EXPECT_EQ(0x1f, bar0_read(self->device, UART_MCR));
}

/*
 * Each UART event raises INTx, which the device then masks: a level-triggered
 * line that stays asserted while an interrupt is pending.
 */
TEST_F(uart, intx_events)
{
	const __u32 intx = VFIO_PCI_INTX_IRQ_INDEX;
	unsigned int i;

	ASSERT_EQ(0, set_eventfd(self->device, intx, self->eventfd));
	ASSERT_EQ(0, bar0_write(self->device, UART_FCR, UART_FCR_ENABLE_FIFO |
				UART_FCR_TRIGGER_4));
	ASSERT_EQ(0, bar0_write(self->device, UART_IER, UART_IER_RDI));
	/* Below the trigger level, the character timeout (which has elapsed) */
	ASSERT_EQ(0, bar0_write(self->device, UART_TX, 0));
	EXPECT_EQ(1, fired(self->eventfd));
	EXPECT_EQ(IIR_FIFO | UART_IIR_RX_TIMEOUT, bar0_read(self->device, UART_IIR));
	for (i = 1; i < 4; i++)
		ASSERT_EQ(0, bar0_write(self->device, UART_TX, i));
	EXPECT_EQ(IIR_FIFO | UART_IIR_RDI, bar0_read(self->device, UART_IIR));
	/* Masked since; replacing the eventfd keeps the mask */
	ASSERT_EQ(0, set_eventfd(self->device, intx, self->eventfd));
	EXPECT_EQ(0, fired(self->eventfd));
	/* Unmasking with data still pending signals again */
	ASSERT_EQ(0, irq_action(self->device, intx, VFIO_IRQ_SET_ACTION_UNMASK));
	EXPECT_EQ(1, fired(self->eventfd));
	for (i = 0; i < 4; i++)
		EXPECT_EQ(i, bar0_read(self->device, UART_RX));
	EXPECT_EQ(IIR_FIFO | UART_IIR_NO_INT, bar0_read(self->device, UART_IIR));
	ASSERT_EQ(0, irq_action(self->device, intx, VFIO_IRQ_SET_ACTION_UNMASK));
	EXPECT_EQ(0, fired(self->eventfd));

	/* The transmitter interrupt: when enabled, and after each byte sent */
	ASSERT_EQ(0, bar0_write(self->device, UART_IER, UART_IER_THRI));
	EXPECT_EQ(1, fired(self->eventfd));
	EXPECT_EQ(IIR_FIFO | UART_IIR_THRI, bar0_read(self->device, UART_IIR));
	EXPECT_EQ(IIR_FIFO | UART_IIR_NO_INT, bar0_read(self->device, UART_IIR));
	ASSERT_EQ(0, irq_action(self->device, intx, VFIO_IRQ_SET_ACTION_UNMASK));
	ASSERT_EQ(0, bar0_write(self->device, UART_TX, 'x'));
	EXPECT_EQ(1, fired(self->eventfd));
	EXPECT_EQ('x', bar0_read(self->device, UART_RX));
	EXPECT_EQ(IIR_FIFO | UART_IIR_THRI, bar0_read(self->device, UART_IIR));

	/* An overrun */
	ASSERT_EQ(0, irq_action(self->device, intx, VFIO_IRQ_SET_ACTION_MASK));
	ASSERT_EQ(0, bar0_write(self->device, UART_IER, UART_IER_RLSI));
	ASSERT_EQ(0, irq_action(self->device, intx, VFIO_IRQ_SET_ACTION_UNMASK));
	EXPECT_EQ(0, fired(self->eventfd));
	for (i = 0; i <= FIFO_SIZE; i++)
		ASSERT_EQ(0, bar0_write(self->device, UART_TX, i));
	EXPECT_EQ(1, fired(self->eventfd));
	EXPECT_EQ(IIR_FIFO | UART_IIR_RLSI, bar0_read(self->device, UART_IIR));
	bar0_read(self->device, UART_LSR);
	EXPECT_EQ(IIR_FIFO | UART_IIR_NO_INT, bar0_read(self->device, UART_IIR));

	/* A modem status change */
	ASSERT_EQ(0, bar0_write(self->device, UART_IER, UART_IER_MSI));
	ASSERT_EQ(0, irq_action(self->device, intx, VFIO_IRQ_SET_ACTION_UNMASK));
	ASSERT_EQ(0, bar0_write(self->device, UART_MCR, UART_MCR_DTR | UART_MCR_RTS));
	EXPECT_EQ(1, fired(self->eventfd));
	EXPECT_EQ(IIR_FIFO | UART_IIR_MSI, bar0_read(self->device, UART_IIR));

	/* Torn down, nothing is signalled */
	ASSERT_EQ(0, set_irqs(self->device, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
			      intx, 0, 0, NULL, 0));
	bar0_read(self->device, UART_MSR);
	ASSERT_EQ(0, bar0_write(self->device, UART_MCR, 0));
	EXPECT_EQ(0, fired(self->eventfd));

	/* Set up again while an interrupt is pending: the line is already asserted */
	ASSERT_EQ(0, set_eventfd(self->device, intx, self->eventfd));
	EXPECT_EQ(1, fired(self->eventfd));
}

/* MSI is signalled on every event, with no masking. */
TEST_F(uart, msi_events)
{
	const __u32 msi = VFIO_PCI_MSI_IRQ_INDEX;

	ASSERT_EQ(0, set_eventfd(self->device, msi, self->eventfd));
	EXPECT_EQ(-EINVAL, set_eventfd(self->device, VFIO_PCI_INTX_IRQ_INDEX, self->eventfd));
	ASSERT_EQ(0, bar0_write(self->device, UART_IER, UART_IER_RDI));
	ASSERT_EQ(0, bar0_write(self->device, UART_TX, 'a'));
	EXPECT_EQ('a', bar0_read(self->device, UART_RX));
	ASSERT_EQ(0, bar0_write(self->device, UART_TX, 'b'));
	EXPECT_EQ(2, fired(self->eventfd));

	/* A loopback trigger */
	ASSERT_EQ(0, irq_action(self->device, msi, VFIO_IRQ_SET_ACTION_TRIGGER));
	EXPECT_EQ(1, fired(self->eventfd));

	/* Descriptor -1 unassigns the eventfd; MSI stays set up until torn down */
	ASSERT_EQ(0, set_eventfd(self->device, msi, -1));
	EXPECT_EQ('b', bar0_read(self->device, UART_RX));
	ASSERT_EQ(0, bar0_write(self->device, UART_TX, 'c'));
	EXPECT_EQ(0, fired(self->eventfd));
	EXPECT_EQ(-EINVAL, set_eventfd(self->device, VFIO_PCI_INTX_IRQ_INDEX, self->eventfd));
	ASSERT_EQ(0, set_irqs(self->device, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
			      msi, 0, 0, NULL, 0));
	EXPECT_EQ(0, set_eventfd(self->device, VFIO_PCI_INTX_IRQ_INDEX, self->eventfd));
}

/* A reset brings the UART back to power-on, and keeps the interrupt set-up. */
TEST_F(uart, reset)
{
	ASSERT_EQ(0, set_eventfd(self->device, VFIO_PCI_INTX_IRQ_INDEX, self->eventfd));
	ASSERT_EQ(0, bar0_write(self->device, UART_LCR, UART_LCR_DLAB));
	ASSERT_EQ(0, bar0_write(self->device, UART_DLL, 0x30));
	ASSERT_EQ(0, bar0_write(self->device, UART_LCR, UART_LCR_WLEN8));
	ASSERT_EQ(0, bar0_write(self->device, UART_FCR, UART_FCR_ENABLE_FIFO));
	ASSERT_EQ(0, bar0_write(self->device, UART_MCR, UART_MCR_DTR | UART_MCR_OUT2));
	ASSERT_EQ(0, bar0_write(self->device, UART_SCR, 0x77));
	ASSERT_EQ(0, bar0_write(self->device, UART_TX, 'z'));

	ASSERT_EQ(0, ioctl(self->device, VFIO_DEVICE_RESET));
	expect_power_on(_metadata, self->device);

	ASSERT_EQ(0, bar0_write(self->device, UART_IER, UART_IER_THRI));
	EXPECT_EQ(1, fired(self->eventfd));
}

/* Accesses outside BAR0's 8 bytes, or straddling its end, fail and change nothing. */
TEST_F(uart, out_of_range)
{
	__u8 bytes[9] = { 0 };

	ASSERT_EQ(0, bar0_write(self->device, UART_SCR, 0x33));
	EXPECT_EQ(-1, pread(self->device, bytes, 1, BAR0_OFFSET + 8));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, pread(self->device, bytes, 9, BAR0_OFFSET));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, pwrite(self->device, bytes, 2, BAR0_OFFSET + UART_SCR));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, pwrite(self->device, bytes, 4, BAR0_OFFSET + 6));
	EXPECT_EQ(EINVAL, errno);
	/* The last byte of region 0 and the first of region 1 */
	EXPECT_EQ(-1, pwrite(self->device, bytes, 2, REGION_OFFSET(1) - 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0x33, bar0_read(self->device, UART_SCR));
	EXPECT_EQ(LSR_IDLE, bar0_read(self->device, UART_LSR));
}

/* Two devices open at once do not see each other's UART, memory or interrupts. */
TEST_F(uart, two_devices_isolated)
{
	struct rmtty_vfio other = RMTTY_VFIO_INIT;
	__u32 word = 0xdeadbeef, back = 0;
	char uuid[UUID_LEN + 1];

	rmtty_uuid(uuid, 2);
	ASSERT_EQ(0, rmtty_create(1, uuid));
	ASSERT_EQ(0, rmtty_vfio_open(&other, uuid, variant->cdev));

	ASSERT_EQ(0, set_eventfd(self->device, VFIO_PCI_INTX_IRQ_INDEX, self->eventfd));
	ASSERT_EQ(0, bar0_write(self->device, UART_SCR, 0x11));
	ASSERT_EQ(0, bar0_write(self->device, UART_TX, 'A'));
	ASSERT_EQ(4, pwrite(self->device, &word, 4, BAR2_OFFSET));

	EXPECT_EQ(0, bar0_read(other.device, UART_SCR));
	EXPECT_EQ(LSR_IDLE, bar0_read(other.device, UART_LSR));
	ASSERT_EQ(4, pread(other.device, &back, 4, BAR2_OFFSET));
	EXPECT_EQ(0, back);
	ASSERT_EQ(0, bar0_write(other.device, UART_IER, UART_IER_THRI));
	EXPECT_EQ(0, fired(self->eventfd));

	EXPECT_EQ('A', bar0_read(self->device, UART_RX));
	EXPECT_EQ(0x11, bar0_read(self->device, UART_SCR));
	rmtty_vfio_close(&other);
}

struct hammer {
	int device, eventfd;
	atomic_bool stop;
	unsigned long rounds[3], errors[3];
};

/* BAR0: the scratch register keeps what this thread alone writes. */
static void *hammer_uart(void *arg)
{
	struct hammer *h = arg;
	__u8 n;

	for (n = 0; !atomic_load(&h->stop); n++, h->rounds[0]++) {
		if (bar0_write(h->device, UART_SCR, n) || bar0_read(h->device, UART_SCR) != n)
			h->errors[0]++;
		if (bar0_write(h->device, UART_TX, n) || bar0_read(h->device, UART_LSR) < 0 ||
		    bar0_read(h->device, UART_RX) < 0 || bar0_read(h->device, UART_IIR) < 0)
			h->errors[0]++;
	}
	return NULL;
}

/* BAR2: pages this thread alone writes read back as written. */
static void *hammer_memory(void *arg)
{
	static __u8 page[4096], back[4096];
	struct hammer *h = arg;
	unsigned long n;
	__u64 offset;

	for (n = 0; !atomic_load(&h->stop); n++, h->rounds[1]++) {
		offset = BAR2_OFFSET + (n * sizeof(page)) % (1 << 20);
		memset(page, n, sizeof(page));
		if (pwrite(h->device, page, sizeof(page), offset) != sizeof(page) ||
		    pread(h->device, back, sizeof(back), offset) != sizeof(back) ||
		    memcmp(page, back, sizeof(page)))
			h->errors[1]++;
	}
	return NULL;
}

/* Interrupts set up, unmasked, enabled at the UART and torn down. */
static void *hammer_irqs(void *arg)
{
	const __u32 intx = VFIO_PCI_INTX_IRQ_INDEX;
	struct hammer *h = arg;

	for (; !atomic_load(&h->stop); h->rounds[2]++) {
		if (set_eventfd(h->device, intx, h->eventfd) ||
		    bar0_write(h->device, UART_IER, h->rounds[2] & 0xf) ||
		    irq_action(h->device, intx, VFIO_IRQ_SET_ACTION_UNMASK) ||
		    set_eventfd(h->device, intx, -1))
			h->errors[2]++;
		fired(h->eventfd);
	}
	return NULL;
}

/* Three threads on BAR0, BAR2 and the interrupts of one device for 3 seconds. */
TEST_F(uart, concurrent_access)
{
	void *(*workers[3])(void *) = { hammer_uart, hammer_memory, hammer_irqs };
	struct hammer h = { .device = self->device, .eventfd = self->eventfd };
	pthread_t threads[3];
	int i, kmsg = kmsg_open();

	ASSERT_LE(0, kmsg);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, pthread_create(&threads[i], NULL, workers[i], &h));
	sleep(3);
	atomic_store(&h.stop, true);
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, pthread_join(threads[i], NULL));
		EXPECT_LT(0, h.rounds[i]) TH_LOG("thread %d", i);
		EXPECT_EQ(0, h.errors[i]) TH_LOG("thread %d: %lu errors in %lu rounds", i,
						 h.errors[i], h.rounds[i]);
	}
	TH_LOG("rounds: BAR0 %lu, BAR2 %lu, interrupts %lu", h.rounds[0], h.rounds[1],
	       h.rounds[2]);
	EXPECT_EQ(0, kmsg_splats(kmsg));
	close(kmsg);
}

TEST_HARNESS_MAIN
