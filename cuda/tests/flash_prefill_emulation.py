#!/usr/bin/env python3
# flash_prefill_emulation.py - the index math of flash_prefill_kernel
# (cuda/kernels/flash_prefill.cu) run on the host, lane by lane, against an
# f64 attention reference: a check that needs no GPU.
#
# The PTX semantics are written out here independently of the kernel:
# mma.m16n8k16 with .bf16 (A, B and C fragment layouts) and ldmatrix .x4 /
# .x4.trans (lane l addresses row l % 8 of matrix l / 8; thread l receives
# row l / 4, elements 2 (l % 4) and 2 (l % 4) + 1, of each matrix, transposed
# first with .trans). What follows them mirrors the kernel statement by
# statement (row packing of the GQA group, the tile staging, ldmatrix
# addresses, masks, online softmax in exp2 units, P packed from the S
# accumulators, the quad reductions, the stores): change the two together.
# Exits 1 when an output is missing (NaN) or its relative L2 error against
# the reference exceeds 1e-2 (bf16 Q and P: ~2e-3 expected).
#
#   python3 cuda/tests/flash_prefill_emulation.py   (ctest cuda_flash_emulation, ~10 s)
import math, random, struct, sys
random.seed(1)
INF = float('inf')

def bf16(x):
    if x in (INF, -INF): return x
    b = struct.unpack('<I', struct.pack('<f', x))[0]
    r = (((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16) & 0xFFFFFFFF
    return struct.unpack('<f', struct.pack('<I', r))[0]

def mma(c, a, b):
    A = [[0.0]*16 for _ in range(16)]; B = [[0.0]*8 for _ in range(16)]
    for l in range(32):
        g, q = l >> 2, l & 3
        for reg, (r, c0) in enumerate([(g, 2*q), (g+8, 2*q), (g, 2*q+8), (g+8, 2*q+8)]):
            A[r][c0] = a[l][reg][0]; A[r][c0+1] = a[l][reg][1]
        for reg, k0 in enumerate([2*q, 2*q+8]):
            B[k0][g] = b[l][reg][0]; B[k0+1][g] = b[l][reg][1]
    C = [[sum(A[i][k]*B[k][j] for k in range(16)) for j in range(8)] for i in range(16)]
    out = [list(x) for x in c]
    for l in range(32):
        g, q = l >> 2, l & 3
        out[l][0] += C[g][2*q]; out[l][1] += C[g][2*q+1]; out[l][2] += C[g+8][2*q]; out[l][3] += C[g+8][2*q+1]
    return out

def ldmatrix(smem, addrs, trans):
    regs = [[None]*4 for _ in range(32)]
    for m in range(4):
        M = [smem[addrs[m*8 + r]: addrs[m*8 + r] + 8] for r in range(8)]
        if trans: M = [[M[r][c] for r in range(8)] for c in range(8)]
        for l in range(32):
            regs[l][m] = (M[l // 4][2*(l % 4)], M[l // 4][2*(l % 4) + 1])
    return regs

def run(D, n_rep, T, P):
    TP = 64; S = D + 8
    pos = list(range(P - T, P))
    q = [[[random.uniform(-2, 2) for _ in range(D)] for _ in range(n_rep)] for _ in range(T)]
    K = [[bf16(random.uniform(-1, 1)) for _ in range(D)] for _ in range(P)]
    V = [[bf16(random.uniform(-1, 1)) for _ in range(D)] for _ in range(P)]
    scale = 1/math.sqrt(D); qscale = scale * 1.4426950408889634
    rows = T * n_rep
    out = [[[float('nan')]*D for _ in range(n_rep)] for _ in range(T)]
    nblocks = (rows + 63) // 64
    for bx in range(nblocks):
        m0 = (nblocks - 1 - bx) * 64
        prow = {}; valid = {}; qrow = {}
        for w in range(4):
            for l in range(32):
                g = l >> 2
                for i in range(2):
                    m = m0 + w*16 + g + 8*i
                    valid[w, l, i] = m < rows
                    m = min(m, rows - 1)
                    prow[w, l, i] = pos[m // n_rep]; qrow[w, l, i] = (m // n_rep, m % n_rep)
        wmin = {w: min(prow[w, l, i] for l in range(32) for i in range(2)) for w in range(4)}
        wmax = {w: max(prow[w, l, i] for l in range(32) for i in range(2)) for w in range(4)}
        end = max(wmax.values()) + 1
        ntiles = (end + TP - 1) // TP
        st = {}
        for w in range(4):
            qa = []
            for kc in range(D // 16):
                regs = []
                for l in range(32):
                    c = kc*16 + 2*(l & 3)
                    def pr(i, cc):
                        t, r = qrow[w, l, i]
                        return (bf16(q[t][r][cc] * qscale), bf16(q[t][r][cc+1] * qscale))
                    regs.append([pr(0, c), pr(1, c), pr(0, c+8), pr(1, c+8)])
                qa.append(regs)
            st[w] = dict(qa=qa, o=[[[0.0]*4 for _ in range(32)] for _ in range(D//8)],
                         m=[[-INF]*2 for _ in range(32)], lsum=[[0.0]*2 for _ in range(32)])
        for j in range(ntiles):
            p0 = j * TP
            sk = [0.0] * (TP * S); sv = [0.0] * (TP * S)
            for r in range(TP):
                p = p0 + r
                if p < end:
                    sk[r*S: r*S + D] = K[p]; sv[r*S: r*S + D] = V[p]
            for w in range(4):
                if not p0 <= wmax[w]: continue
                W = st[w]
                s = []
                for nt in range(TP // 8):
                    acc = [[0.0]*4 for _ in range(32)]
                    for kc2 in range(D // 32):
                        b = ldmatrix(sk, [(nt*8 + (l & 7))*S + kc2*32 + (l >> 3)*8 for l in range(32)], False)
                        acc = mma(acc, W['qa'][2*kc2], [(b[l][0], b[l][1]) for l in range(32)])
                        acc = mma(acc, W['qa'][2*kc2+1], [(b[l][2], b[l][3]) for l in range(32)])
                    s.append(acc)
                if p0 + TP - 1 > wmin[w]:
                    for nt in range(TP // 8):
                        for l in range(32):
                            for e in range(4):
                                if p0 + nt*8 + 2*(l & 3) + (e & 1) > prow[w, l, e >> 1]: s[nt][l][e] = -INF
                for r in range(2):
                    mx = [max([W['m'][l][r]] + [max(s[nt][l][2*r], s[nt][l][2*r+1]) for nt in range(TP//8)]) for l in range(32)]
                    mx = [max(mx[l], mx[l ^ 1]) for l in range(32)]
                    mx = [max(mx[l], mx[l ^ 2]) for l in range(32)]
                    for l in range(32):
                        corr = 2.0 ** (W['m'][l][r] - mx[l]); W['m'][l][r] = mx[l]
                        sm = 0.0
                        for nt in range(TP // 8):
                            for e in (2*r, 2*r+1):
                                s[nt][l][e] = 2.0 ** (s[nt][l][e] - mx[l]); sm += s[nt][l][e]
                        W['lsum'][l][r] = W['lsum'][l][r] * corr + sm
                        for d in range(D // 8):
                            W['o'][d][l][2*r] *= corr; W['o'][d][l][2*r+1] *= corr
                for kk in range(TP // 16):
                    pa = [[(bf16(s[2*kk][l][0]), bf16(s[2*kk][l][1])), (bf16(s[2*kk][l][2]), bf16(s[2*kk][l][3])),
                           (bf16(s[2*kk+1][l][0]), bf16(s[2*kk+1][l][1])), (bf16(s[2*kk+1][l][2]), bf16(s[2*kk+1][l][3]))] for l in range(32)]
                    for d2 in range(D // 16):
                        b = ldmatrix(sv, [(kk*16 + ((l >> 3) & 1)*8 + (l & 7))*S + d2*16 + (l >> 4)*8 for l in range(32)], True)
                        W['o'][2*d2] = mma(W['o'][2*d2], pa, [(b[l][0], b[l][1]) for l in range(32)])
                        W['o'][2*d2+1] = mma(W['o'][2*d2+1], pa, [(b[l][2], b[l][3]) for l in range(32)])
        for w in range(4):
            W = st[w]
            for r in range(2):
                ls = [W['lsum'][l][r] for l in range(32)]
                ls = [ls[l] + ls[l ^ 1] for l in range(32)]
                ls = [ls[l] + ls[l ^ 2] for l in range(32)]
                for l in range(32):
                    if not valid[w, l, r]: continue
                    t, rr = qrow[w, l, r]; qd = l & 3
                    for d in range(D // 8):
                        out[t][rr][d*8 + 2*qd] = W['o'][d][l][2*r] / ls[l]
                        out[t][rr][d*8 + 2*qd + 1] = W['o'][d][l][2*r+1] / ls[l]
    num = den = 0.0; nans = 0
    for t in range(T):
        n = pos[t] + 1
        for r in range(n_rep):
            sc = [sum(K[p][d] * q[t][r][d] for d in range(D)) * scale for p in range(n)]
            mx = max(sc); e = [math.exp(x - mx) for x in sc]; z = sum(e)
            for d in range(D):
                ref = sum(e[p] * V[p][d] for p in range(n)) / z
                if math.isnan(out[t][r][d]): nans += 1; continue
                num += (out[t][r][d] - ref) ** 2; den += ref * ref
    err = math.sqrt(num / den)
    ok = nans == 0 and err < 1e-2
    print(f"D {D} n_rep {n_rep} T {T} P {P}: missing {nans}, rel L2 {err:.2e} {'ok' if ok else 'FAILED'}", flush=True)
    return ok

# (head_dim, GQA ratio, query rows, positions): one row at position 0; two
# tiles with a prefix in the cache and a partly empty block of rows; three
# tiles at head_dim 128.
results = [run(64, 1, 3, 3), run(64, 4, 20, 90), run(128, 2, 40, 150)]
sys.exit(0 if all(results) else 1)
