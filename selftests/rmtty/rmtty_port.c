// SPDX-License-Identifier: GPL-2.0
/*
 * rmtty_port: the registers of a 16550A port in a nested guest, through the
 * sysfs resource file of the I/O BAR that holds it (a 1-byte pread or pwrite
 * of an I/O resource file is an inb or outb); for the live migration tests'
 * nested init, not a test itself. One process does what took the busybox
 * shell a dd, an od and a tr for each register: under TCG twice over, each
 * process start costs a large part of a second.
 *
 *   rmtty_port FILE get OFFSET          print the register at OFFSET
 *   rmtty_port FILE set OFFSET VALUE    write VALUE to the register at OFFSET
 *   rmtty_port FILE send TEXT           write TEXT to THR, a byte at a time
 *   rmtty_port FILE drained             wait until the driver has sent what
 *                                       it had (IER[THRI] off, LSR[TEMT] on)
 *                                       and taken out what looped back
 *                                       (LSR[DR] off); print the polls
 *   rmtty_port FILE uart CONFIG         print the registers the tests compare:
 *                                       IER, the scratch register, the divisor
 *                                       latch, LCR, MCR, the PCI command
 *                                       register (from CONFIG, the device's
 *                                       sysfs config file) and LSR
 *
 * The divisor latch is read with LCR[DLAB] set for the two reads, and LCR
 * restored after them. It is linked statically, for a busybox initramfs.
 * Exit status: 0, 1 on a failure, 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The 16550A's registers (offsets in the port) and the bits used here. */
#define UART_THR	0	/* with LCR[DLAB]: the divisor latch's low byte */
#define UART_IER	1	/* with LCR[DLAB]: the divisor latch's high byte */
#define UART_LCR	3
#define UART_MCR	4
#define UART_LSR	5
#define UART_SCR	7
#define UART_IER_THRI	0x02
#define UART_LCR_DLAB	0x80
#define UART_LSR_DR	0x01
#define UART_LSR_TEMT	0x40

#define PCI_COMMAND	4

/* How long drained waits: DRAIN_POLLS polls, 10 ms apart. */
#define DRAIN_POLLS	3000

static int port;

static int usage(void)
{
	fprintf(stderr, "usage: rmtty_port FILE get OFFSET | set OFFSET VALUE | send TEXT |\n"
			"                       drained | uart CONFIG\n");
	return 2;
}

/* Parses @arg, a whole number up to @max; false if it is not one. */
static bool number(const char *arg, unsigned long max, unsigned long *value)
{
	char *end;

	errno = 0;
	*value = strtoul(arg, &end, 0);
	return !errno && *arg && !*end && *value <= max;
}

/* The register at @offset, or -1 with what failed printed. */
static int get(unsigned int offset)
{
	uint8_t value;
	ssize_t n = pread(port, &value, 1, offset);

	if (n != 1) {
		fprintf(stderr, "rmtty_port: reading register %u: %s\n", offset,
			n < 0 ? strerror(errno) : "nothing read");
		return -1;
	}
	return value;
}

/* Writes @value to the register at @offset; false with what failed printed. */
static bool set(unsigned int offset, uint8_t value)
{
	ssize_t n = pwrite(port, &value, 1, offset);

	if (n != 1) {
		fprintf(stderr, "rmtty_port: writing register %u: %s\n", offset,
			n < 0 ? strerror(errno) : "nothing written");
		return false;
	}
	return true;
}

/* The divisor latch, or -1 with what failed printed. */
static int divisor(void)
{
	int lcr = get(UART_LCR), lo, hi;

	if (lcr < 0 || !set(UART_LCR, lcr | UART_LCR_DLAB))
		return -1;
	lo = get(UART_THR);
	hi = get(UART_IER);
	if (!set(UART_LCR, lcr) || lo < 0 || hi < 0)
		return -1;
	return hi << 8 | lo;
}

/* The 16-bit PCI command register from the config space file @path, or -1. */
static int pci_command(const char *path)
{
	int fd = open(path, O_RDONLY);
	uint16_t command;
	ssize_t n;

	n = fd < 0 ? -1 : pread(fd, &command, sizeof(command), PCI_COMMAND);
	if (n != sizeof(command))
		fprintf(stderr, "rmtty_port: %s: %s\n", path, n < 0 ? strerror(errno) : "short read");
	if (fd >= 0)
		close(fd);
	return n == sizeof(command) ? command : -1;
}

/* Prints the registers the tests compare, in the order the shell read them. */
static int uart(const char *config)
{
	int ier, scr, dl, lcr, mcr, command, lsr;

	ier = get(UART_IER);
	scr = get(UART_SCR);
	dl = divisor();
	lcr = get(UART_LCR);
	mcr = get(UART_MCR);
	command = pci_command(config);
	lsr = get(UART_LSR);
	if (ier < 0 || scr < 0 || dl < 0 || lcr < 0 || mcr < 0 || command < 0 || lsr < 0)
		return 1;
	printf("ier %d, scratch %d, divisor %d, lcr %d, mcr %d, command %d, lsr %d\n",
	       ier, scr, dl, lcr, mcr, command, lsr);
	return 0;
}

static int drained(void)
{
	const struct timespec poll_interval = { .tv_nsec = 10 * 1000 * 1000 };
	unsigned int polls;
	int ier, lsr;

	for (polls = 0; polls < DRAIN_POLLS; polls++) {
		ier = get(UART_IER);
		lsr = get(UART_LSR);
		if (ier < 0 || lsr < 0)
			return 1;
		if (!(ier & UART_IER_THRI) &&
		    (lsr & (UART_LSR_TEMT | UART_LSR_DR)) == UART_LSR_TEMT) {
			printf("%u\n", polls);
			return 0;
		}
		nanosleep(&poll_interval, NULL);
	}
	fprintf(stderr, "rmtty_port: the port did not drain within %u polls\n", DRAIN_POLLS);
	return 1;
}

int main(int argc, char **argv)
{
	unsigned long offset, value;
	const char *text;
	int reg;

	if (argc < 3)
		return usage();
	port = open(argv[1], O_RDWR);
	if (port < 0) {
		fprintf(stderr, "rmtty_port: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (!strcmp(argv[2], "get") && argc == 4 && number(argv[3], UART_SCR, &offset)) {
		reg = get(offset);
		if (reg < 0)
			return 1;
		printf("%d\n", reg);
		return 0;
	}
	if (!strcmp(argv[2], "set") && argc == 5 && number(argv[3], UART_SCR, &offset) &&
	    number(argv[4], 0xff, &value))
		return !set(offset, value);
	if (!strcmp(argv[2], "send") && argc == 4) {
		for (text = argv[3]; *text; text++)
			if (!set(UART_THR, *text))
				return 1;
		return 0;
	}
	if (!strcmp(argv[2], "drained") && argc == 3)
		return drained();
	if (!strcmp(argv[2], "uart") && argc == 4)
		return uart(argv[3]);
	return usage();
}
