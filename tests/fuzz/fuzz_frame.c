/*
 * Fuzz target for the frame decoder, the one place that parses bytes from
 * the network. Besides "no crash", it checks that whatever the decoder
 * accepts re-encodes to a frame that decodes to the same message, so the
 * encoder and decoder cannot drift apart.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char buf[FRAME_BUF_MAX];
	struct frame f, g;
	struct psync_err err;
	size_t off = 0;
	long n, m;

	/* A stream of frames, as the wire layer reads them. */
	while (off < size) {
		n = frame_decode(data + off, size - off, &f, &err);
		if (n <= 0)
			break;
		if ((size_t)n > size - off)
			abort();
		m = frame_encode(&f, buf, sizeof(buf), &err);
		if (m <= 0)
			abort();
		if (frame_decode(buf, (size_t)m, &g, &err) != m)
			abort();
		if (memcmp(&f, &g, sizeof(f)) != 0)
			abort();
		frame_wipe(&f);
		frame_wipe(&g);
		off += (size_t)n;
	}
	return 0;
}
