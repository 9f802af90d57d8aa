/* The spool record codec (spoolrec.h): no library calls, no allocation. */
#include "spoolrec.h"

static void
put_be(uint8_t *p, uint64_t v, int n)
{
	int i;

	for (i = n - 1; i >= 0; i--) {
		p[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

static uint64_t
get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

size_t
spoolrec_plain_len(uint32_t user_len, uint32_t pass_len)
{
	if (user_len == 0 || user_len > SPOOLREC_USER_MAX ||
	    pass_len > SPOOLREC_PASS_MAX)
		return 0;
	return (size_t)SPOOLREC_FIXED_LEN + user_len + pass_len;
}

void
spoolrec_put_header(uint8_t *out, const uint8_t id[SPOOLREC_ID_LEN],
    uint64_t time_ms, uint32_t rid, uint32_t user_len, uint32_t pass_len,
    size_t *user_off, size_t *pass_off)
{
	size_t i;

	for (i = 0; i < SPOOLREC_ID_LEN; i++)
		out[i] = id[i];
	put_be(out + 16, time_ms, 8);
	put_be(out + 24, rid, 4);
	put_be(out + 28, user_len, 2);
	*user_off = 30;
	put_be(out + 30 + user_len, pass_len, 4);
	*pass_off = 34 + (size_t)user_len;
}

void
spoolrec_put_file_head(uint8_t out[SPOOLREC_HEAD_LEN],
    const uint8_t nonce[SPOOLREC_NONCE_LEN], uint32_t plain_len)
{
	int i;

	out[0] = 'P';
	out[1] = 'S';
	out[2] = 'W';
	out[3] = '1';
	for (i = 0; i < SPOOLREC_NONCE_LEN; i++)
		out[4 + i] = nonce[i];
	put_be(out + 4 + SPOOLREC_NONCE_LEN, plain_len, 4);
}

long
spoolrec_check_file_head(const uint8_t *file, size_t file_len)
{
	uint64_t n;

	if (file_len < SPOOLREC_HEAD_LEN + SPOOLREC_TAG_LEN ||
	    file_len > SPOOLREC_FILE_MAX)
		return -1;
	if (file[0] != 'P' || file[1] != 'S' || file[2] != 'W' || file[3] != '1')
		return -1;
	n = get_be(file + 4 + SPOOLREC_NONCE_LEN, 4);
	if (n < SPOOLREC_FIXED_LEN + 1 || n > SPOOLREC_PLAIN_MAX ||
	    n != file_len - SPOOLREC_HEAD_LEN - SPOOLREC_TAG_LEN)
		return -1;
	return (long)n;
}

int
spoolrec_parse(const uint8_t *buf, size_t len, struct spoolrec *rec)
{
	size_t i, off;
	uint64_t ulen, plen;

	if (len < SPOOLREC_FIXED_LEN || len > SPOOLREC_PLAIN_MAX)
		return -1;
	for (i = 0; i < SPOOLREC_ID_LEN; i++)
		rec->id[i] = buf[i];
	rec->time_ms = get_be(buf + 16, 8);
	rec->rid = (uint32_t)get_be(buf + 24, 4);
	ulen = get_be(buf + 28, 2);
	if (ulen == 0 || 30 + ulen + 4 > len)
		return -1;
	off = 30 + (size_t)ulen;
	plen = get_be(buf + off, 4);
	if (plen > SPOOLREC_PASS_MAX || off + 4 + plen != len)
		return -1;
	rec->user = buf + 30;
	rec->user_len = (uint32_t)ulen;
	rec->pass = buf + off + 4;
	rec->pass_len = (uint32_t)plen;
	return 0;
}
