# Cross-builds the Windows agent with mingw-w64 (tests/windows/run.sh and
# tools/check call this; it is not part of the autotools build):
#   make -C windows -f windows.mk [O=DIR] [OPENSSL=PREFIX]
# O: where objects and programs go (default ../_build/windows; wixl wants
# its files relative to the .wxs, which is copied there).
# OPENSSL: a mingw64 build of OpenSSL (default: what build-openssl.sh
# builds or finds cached under /var/cache/psync-windows).

# The portable psync sources the agent reuses unchanged. If lib/ is
# reorganised, this is the one place to fix.
LIB_PORTABLE = ../lib/proto/frame.c ../lib/change/change.c \
	../lib/core/codes.c ../lib/core/util.c ../lib/proto/tls_psk.c

CC = x86_64-w64-mingw32-gcc
O ?= ../_build/windows
# Expanded once (a cached build answers at once; the first takes minutes).
ifeq ($(origin OPENSSL),undefined)
ifneq ($(MAKECMDGOALS),clean)
OPENSSL := $(shell ./build-openssl.sh | tail -n 1)
$(if $(OPENSSL),,$(error windows/build-openssl.sh failed: see above))
endif
endif
LIB_DIRS = $(sort $(dir $(LIB_PORTABLE)))

WARN = -Wall -Wextra -Werror
CFLAGS = -O2 -g0 $(WARN) -D__USE_MINGW_ANSI_STDIO=1 -D_WIN32_WINNT=0x0601 \
	-ffunction-sections -fdata-sections
# The DLL has no C runtime: no builtins turned into library calls, no
# stack protector, no stack probes.
DLL_CFLAGS = -O2 $(WARN) -D_WIN32_WINNT=0x0601 -ffreestanding \
	-fno-tree-loop-distribute-patterns -fno-stack-protector -fno-builtin

AGENT_SRC = main.c conf.c engine.c tls.c wspool.c spoolrec.c
AGENT_OBJ = $(addprefix $(O)/agent/,$(AGENT_SRC:.c=.o)) $(O)/agent/messages.o \
	$(addprefix $(O)/lib/,$(notdir $(LIB_PORTABLE:.c=.o)))
TEST_PROGS = $(O)/lsa-loader.exe

all: $(O)/psyncpwd.dll $(O)/psync-agent.exe $(TEST_PROGS)

$(O)/dll/%.o: %.c common.h spoolrec.h
	@mkdir -p $(@D)
	$(CC) $(DLL_CFLAGS) -c $< -o $@

$(O)/psyncpwd.dll: $(O)/dll/psyncpwd.o $(O)/dll/spoolrec.o psyncpwd.def
	$(CC) -shared -nostdlib -Wl,--entry,DllMain -Wl,--gc-sections -s \
		-o $@ $(O)/dll/psyncpwd.o $(O)/dll/spoolrec.o psyncpwd.def \
		-lkernel32 -ladvapi32 -lbcrypt -lgcc

$(O)/agent/%.o: %.c agent.h common.h spoolrec.h tls.h wspool.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -I. $(addprefix -I,$(LIB_DIRS)) -I$(OPENSSL)/include \
		-c $< -o $@

# lib/ sources (util.c's clock functions need winpthread's clock_gettime,
# linked statically): their format strings are checked by the UNIX build; the
# Windows one only warns about %z, which __USE_MINGW_ANSI_STDIO handles.
$(O)/lib/%.o: $(LIB_PORTABLE) config.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Wno-format -I. $(addprefix -I,$(LIB_DIRS)) \
		-I$(OPENSSL)/include -c $(filter %/$*.c,$(LIB_PORTABLE)) -o $@

# The event log's message table (event ids 1000, 8201, 8203, 12294): the
# Event Viewer finds the text through EventMessageFile, which install sets.
$(O)/agent/messages.o: messages.mc
	@mkdir -p $(O)/mc $(@D)
	x86_64-w64-mingw32-windmc -A -U -h $(O)/mc -r $(O)/mc messages.mc
	x86_64-w64-mingw32-windres -I$(O)/mc -i $(O)/mc/messages.rc -o $@

$(O)/psync-agent.exe: $(AGENT_OBJ)
	$(CC) -static -Wl,--gc-sections -s -o $@ $(AGENT_OBJ) \
		$(OPENSSL)/lib/libssl.a $(OPENSSL)/lib/libcrypto.a \
		-lws2_32 -lcrypt32 -lbcrypt -ladvapi32 -lnetapi32 -luser32 -lgdi32 \
		-Wl,-Bstatic -lpthread

$(O)/lsa-loader.exe: ../tests/windows/lsa-loader.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -static -o $@ $<

# The installer (msitools' wixl), from the two programs above.
VERSION = $(shell awk -F'[][]' '/^AC_INIT/ { print $$4 }' ../configure.ac)
msi: $(O)/psync-agent.msi
$(O)/psync-agent.msi: psync-agent.wxs $(O)/psyncpwd.dll $(O)/psync-agent.exe
	cp psync-agent.wxs $(O)/psync-agent.wxs
	cd $(O) && wixl -a x64 -D BinDir=. -D Version=$(or $(VERSION),0.1.0) \
		-o psync-agent.msi psync-agent.wxs

clean:
	rm -rf $(O)

.PHONY: all clean msi
