/*
 * A stand-in for the published UNIX-side MEPP listener, for system tests,
 * as far as a client can tell it apart: it MACs every request as type 0,
 * so it answers 5 to any type 2; it derives the key in one form only
 * (-8: the 8-byte form of the 64-bit build) and answers 5 when the MAC
 * fails; it answers 0 for the users named on the command line and 4 for
 * any other, as its PAM stack would. It changes nothing.
 *
 * Usage: mepp-legacy [-8] PORT SECRET [USER...]
 * Serves 127.0.0.1:PORT until killed; prints "ready" once listening and
 * one line per request: TYPE USER CODE.
 *
 * mepp-legacy -c PORT SECRET USER sends what the legacy PAM module sends
 * before a change, a type 2 check with "temppass", to 127.0.0.1:PORT and
 * prints the answer's code; -s PORT SECRET USER PASSWORD sends a change
 * (type 0) the same way.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "codes.h"
#include "mepp.h"
#include "mepp_net.h"
#include "util.h"

static int
read_all(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = read(fd, buf + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static void
serve(int fd, const char *secret, enum mepp_kdf_form form, char **users)
{
	struct mepp_request req;
	uint8_t r1[MEPP_NONCE_LEN], buf[MEPP_MAX_REQUEST];
	uint8_t resp[MEPP_RESPONSE_LEN];
	const char *why;
	size_t total;
	int code = PSYNC_E_PROTOCOL, type = -1, i;

	memset(&req, 0, sizeof(req));
	if (RAND_bytes(r1, sizeof(r1)) != 1 ||
	    send(fd, r1, sizeof(r1), MSG_NOSIGNAL) != (ssize_t)sizeof(r1))
		return;
	if (read_all(fd, buf, MEPP_HEADER_LEN) == -1 ||
	    (total = mepp_request_header(buf, MEPP_HEADER_LEN, &why)) == 0 ||
	    read_all(fd, buf + MEPP_HEADER_LEN, total - MEPP_HEADER_LEN) == -1)
		goto answer;
	type = buf[11];
	if (type == MEPP_TYPE_CHECK)
		goto answer;	/* its MAC over type 0 never matches */
	if (mepp_request_parse(r1, secret, buf, total, &req) != PSYNC_OK ||
	    req.form != form)
		goto answer;
	code = PSYNC_E_NOT_UPDATED;
	for (i = 0; users[i] != NULL; i++)
		if (strcmp(users[i], req.user) == 0)
			code = PSYNC_OK;
answer:
	printf("%d %s %d\n", type, req.user[0] != '\0' ? req.user : "-", code);
	fflush(stdout);
	mepp_request_wipe(&req);
	secure_wipe(buf, sizeof(buf));
	mepp_response_build(code, resp);
	(void)send(fd, resp, sizeof(resp), MSG_NOSIGNAL);
}

int
main(int argc, char **argv)
{
	enum mepp_kdf_form form = MEPP_KDF_WORD4;
	struct sockaddr_in sin;
	struct psync_err err;
	int lfd, fd, one = 1, a = 1;

	if ((argc == 5 && strcmp(argv[1], "-c") == 0) ||
	    (argc == 6 && strcmp(argv[1], "-s") == 0)) {
		struct mepp_client c;
		int code;

		memset(&c, 0, sizeof(c));
		c.host = "127.0.0.1";
		c.port = (unsigned int)atoi(argv[2]);
		c.secret = argv[3];
		code = argc == 6 ? mepp_client_change(&c, argv[4], argv[5], &err) :
		    mepp_client_check(&c, argv[4], &err);
		if (code == -1) {
			fprintf(stderr, "mepp-legacy: %s\n", err.msg);
			return 1;
		}
		printf("%d\n", code);
		return 0;
	}
	if (argc > 1 && strcmp(argv[1], "-8") == 0) {
		form = MEPP_KDF_WORD8;
		a++;
	}
	if (argc - a < 2) {
		fprintf(stderr, "usage: mepp-legacy [-8] PORT SECRET [USER...]\n");
		return 2;
	}
	if (mepp_crypto_init(&err) == -1) {
		fprintf(stderr, "mepp-legacy: %s\n", err.msg);
		return 1;
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(argv[a]));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd == -1 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(lfd, 16) == -1) {
		perror("mepp-legacy: listen");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		fd = accept(lfd, NULL, NULL);
		if (fd == -1)
			continue;
		serve(fd, argv[a + 1], form, argv + a + 2);
		close(fd);
	}
}
