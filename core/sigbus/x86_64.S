/*
 * shmkit's SIGBUS handler, x86_64 Linux. Assembled by scripts/gen_sigbus.ts
 * with `as --defsym` for every number (core/_sigbus_layout.ts and the
 * platform table); the bytes land in core/_sigbus_code.ts. JS copies them
 * into a page, writes the data page's address at data_ptr, and makes the
 * page read+exec.
 *
 * Entered as void handler(int sig, siginfo_t *info, void *ucontext) on the
 * faulting thread. Async-signal-safe: raw syscalls only, no stack beyond a
 * few pushes. A BUS_ADRERR fault inside an active slot's range gets
 * anonymous zero pages mapped over [fault page, slot mark) and returns, so
 * the access is retried and completes. A SIGBUS sent with kill gets the
 * default action; any other fault goes to the handler that was installed
 * before us (or to the default action if there was none).
 */
	.intel_syntax noprefix
	.text
header:
	.ascii "shmkitSB"
data_ptr:
	.quad 0

handler:
	endbr64
	mov r8, [rip + data_ptr]
	lock inc qword ptr [r8 + D_BUSY]   /* a full barrier too: slots read after */
	mov eax, [rsi + SI_CODE]
	test eax, eax
	jle sent                           /* kill, tgkill, sigqueue: si_code <= 0 */
	cmp eax, BUS_ADRERR
	jne chain                          /* BUS_MCEERR_*, BUS_ADRALN, BUS_OBJERR */
	mov rax, [rsi + SI_ADDR]
	mov r9, [r8 + D_HIGH]
	lea rcx, [r8 + D_SLOTS]
scan:
	test r9, r9
	jz chain
	cmp qword ptr [rcx], SLOT_ACTIVE
	jne next
	cmp rax, [rcx + S_START]
	jb next
	cmp rax, [rcx + S_END]
	jb found
next:
	add rcx, SLOT_SIZE
	dec r9
	jmp scan

found:
	and rax, [r8 + D_PAGEMASK]
	lock inc qword ptr [rcx + S_HITS]
	lock inc qword ptr [r8 + D_HITS]
	mov r10, rax
	mov rax, [rcx + S_MARK]
claim:
	/* Pages from the mark up are replaced or being replaced: replacing them
	 * again could zero a write made since, so only [page, mark) is ours. */
	cmp r10, rax
	jae replaced
	mov r11, rax
	lock cmpxchg [rcx + S_MARK], r10
	jne claim
	push rdi
	push rsi
	push rdx
	mov rdi, r10
	mov rsi, r11
	sub rsi, r10
	mov edx, [rcx + S_PROT]
	mov r10d, MAP_FLAGS
	mov r8, -1
	xor r9d, r9d
	mov eax, SYS_MMAP
	syscall
	pop rdx
	pop rsi
	pop rdi
	mov r8, [rip + data_ptr]
	cmp rax, -4095
	jae chain                          /* no zero pages: behave as if unguarded */
	jmp done
replaced:
	/* Another thread holds the claim and may still be inside mmap: yield
	 * before the access is retried, rather than fault again at once. */
	mov eax, SYS_SCHED_YIELD
	syscall
done:
	lock dec qword ptr [r8 + D_BUSY]
	ret

chain:
	lock dec qword ptr [r8 + D_BUSY]
	mov rax, [r8 + D_OLD]
	cmp rax, 1
	jbe reraise
	jmp rax                            /* same registers: sig, info, ucontext */

sent:
	/* A SIGBUS sent by a process is not a fault we could repair, and a
	 * runtime's fault handler may swallow it (Deno's resets the action to
	 * SIG_DFL and returns, dropping this handler too): take the default
	 * action, so `kill -BUS` terminates as it does in a plain process. */
	lock dec qword ptr [r8 + D_BUSY]
reraise:
	/* The old action was SIG_DFL or SIG_IGN: restore SIG_DFL and send the
	 * signal again; it is blocked until we return, then it takes effect. */
	push rdi
	lea rsi, [r8 + D_DFL]
	xor edx, edx
	mov r10d, KSIGSET_SIZE
	mov eax, SYS_RT_SIGACTION
	syscall
	mov eax, SYS_GETPID
	syscall
	mov r9, rax
	mov eax, SYS_GETTID
	syscall
	mov rsi, rax
	mov rdi, r9
	pop rdx
	mov eax, SYS_TGKILL
	syscall
	ret
