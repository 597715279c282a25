/*
 * shmkit's SIGBUS handler, aarch64 Linux: the same logic as x86_64.S (read
 * that file's notes first). Atomics are load/store-exclusive loops, not LSE,
 * so ARMv8.0 cores run it too. The entry is a BTI landing pad (a NOP where
 * BTI is off), and the chained handler is reached through x16 so that its own
 * landing pad accepts the branch.
 *
 * Entered as void handler(int sig [x0], siginfo_t *info [x1], void *uc [x2]);
 * returns through x30, which the kernel set to the sigreturn trampoline.
 */
	.text
header:
	.ascii "shmkitSB"
data_ptr:
	.quad 0

handler:
	hint #34                        /* bti c */
	ldr x9, data_ptr
	add x10, x9, #D_BUSY
1:	ldaxr x12, [x10]
	add x12, x12, #1
	stlxr w13, x12, [x10]
	cbnz w13, 1b
	dmb ish                         /* busy is visible before any slot is read */
	ldr w12, [x1, #SI_CODE]
	cmp w12, #0
	b.le sent                       /* kill, tgkill, sigqueue: si_code <= 0 */
	cmp w12, #BUS_ADRERR
	b.ne chain                      /* BUS_MCEERR_*, BUS_ADRALN, BUS_OBJERR */
	ldr x12, [x1, #SI_ADDR]
	ldr x13, [x9, #D_HIGH]
	add x14, x9, #D_SLOTS
scan:
	cbz x13, chain
	ldar x15, [x14]
	cmp x15, #SLOT_ACTIVE
	b.ne next
	ldr x15, [x14, #S_START]
	cmp x12, x15
	b.lo next
	ldr x15, [x14, #S_END]
	cmp x12, x15
	b.lo found
next:
	add x14, x14, #SLOT_SIZE
	sub x13, x13, #1
	b scan

found:
	ldr x15, [x9, #D_PAGEMASK]
	and x12, x12, x15
	add x10, x14, #S_HITS
2:	ldaxr x15, [x10]
	add x15, x15, #1
	stlxr w13, x15, [x10]
	cbnz w13, 2b
	add x10, x9, #D_HITS
3:	ldaxr x15, [x10]
	add x15, x15, #1
	stlxr w13, x15, [x10]
	cbnz w13, 3b
	add x10, x14, #S_MARK
claim:
	/* Pages from the mark up are replaced or being replaced: replacing them
	 * again could zero a write made since, so only [page, mark) is ours. */
	ldaxr x15, [x10]
	cmp x12, x15
	b.hs claimed_by_other
	stlxr w13, x12, [x10]
	cbnz w13, claim
	mov x6, x0
	mov x7, x1
	mov x11, x2
	mov x0, x12
	sub x1, x15, x12
	ldr x2, [x14, #S_PROT]
	mov x3, #MAP_FLAGS
	mov x4, #-1
	mov x5, #0
	mov x8, #SYS_MMAP
	svc #0
	cmn x0, #4095
	mov x0, x6
	mov x1, x7
	mov x2, x11
	b.hs chain                      /* no zero pages: behave as if unguarded */
	b done
claimed_by_other:
	/* Another thread holds the claim and may still be inside mmap: yield
	 * before the access is retried, rather than fault again at once. */
	clrex
	mov x8, #SYS_SCHED_YIELD
	svc #0
done:
	add x10, x9, #D_BUSY
4:	ldaxr x12, [x10]
	sub x12, x12, #1
	stlxr w13, x12, [x10]
	cbnz w13, 4b
	ret

chain:
	add x10, x9, #D_BUSY
5:	ldaxr x12, [x10]
	sub x12, x12, #1
	stlxr w13, x12, [x10]
	cbnz w13, 5b
	ldr x16, [x9, #D_OLD]
	cmp x16, #1
	b.ls reraise
	br x16                          /* same registers: sig, info, ucontext */

sent:
	/* Sent by a process: the default action (see x86_64.S). */
	add x10, x9, #D_BUSY
6:	ldaxr x12, [x10]
	sub x12, x12, #1
	stlxr w13, x12, [x10]
	cbnz w13, 6b
reraise:
	/* The old action was SIG_DFL or SIG_IGN: restore SIG_DFL and send the
	 * signal again; it is blocked until we return, then it takes effect. */
	mov x10, x0
	add x1, x9, #D_DFL
	mov x2, #0
	mov x3, #KSIGSET_SIZE
	mov x8, #SYS_RT_SIGACTION
	svc #0
	mov x8, #SYS_GETPID
	svc #0
	mov x11, x0
	mov x8, #SYS_GETTID
	svc #0
	mov x1, x0
	mov x0, x11
	mov x2, x10
	mov x8, #SYS_TGKILL
	svc #0
	ret
