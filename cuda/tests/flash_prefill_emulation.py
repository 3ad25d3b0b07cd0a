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
# statement (row packing of the GQA group, the kv head of grid y, the tile
# staging through the block table into the two shared-memory stages, ldmatrix
# addresses, masks, online softmax in exp2 units, P packed from the S
# accumulators, the quad reductions, the stores): change the two together.
# Shared memory and the cache's unwritten slots start as NaN, so a read of
# anything never staged or written shows as a missing output.
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

# stage_tile: cached positions [p0, p0 + TP) of kv head g into the tiles at
# sk / sv (element offsets into the block's shared memory), zeros from end
# on; blocks: the block table (each block a flat list of elements), koff and
# plane in elements.
def stage_tile(blocks, block_tokens, kv_dim, koff, plane, g, p0, end, D, tiles, sk, sv):
    TP = 64; S = D + 8; chunks = D // 8
    for i in range(TP * chunks):  # every thread's iterations, in any order
        r, c = i // chunks, i % chunks
        p = p0 + r
        ok = p < end
        dk = sk + r*S + c*8; dv = sv + r*S + c*8
        blk = blocks[p // block_tokens if ok else 0]
        elem = (p % block_tokens) * kv_dim + g*D + c*8 if ok else 0
        ks = koff + elem; vs = koff + plane + elem
        tiles[dk:dk + 8] = blk[ks:ks + 8] if ok else [0.0]*8
        tiles[dv:dv + 8] = blk[vs:vs + 8] if ok else [0.0]*8

# n_kv kv heads (grid y), n_rep query heads each; the cache paged in blocks of
# block_tokens positions handed out in shuffled order, rows of kv_dim =
# n_kv * D + pad elements, the K/V planes of `layer` (of layer + 1).
def run(D, n_rep, T, P, n_kv=1, block_tokens=16, layer=0, pad=0):
    TP = 64; S = D + 8; E = TP * S  # Tiles<D>::kElems
    kv_dim = n_kv * D + pad
    n_heads = n_kv * n_rep
    pos = list(range(P - T, P))
    q = [[[random.uniform(-2, 2) for _ in range(D)] for _ in range(n_heads)] for _ in range(T)]
    K = [[bf16(random.uniform(-1, 1)) for _ in range(kv_dim)] for _ in range(P)]
    V = [[bf16(random.uniform(-1, 1)) for _ in range(kv_dim)] for _ in range(P)]
    nb = (P + block_tokens - 1) // block_tokens
    plane = block_tokens * kv_dim
    order = list(range(nb)); random.shuffle(order)
    pool = [[float('nan')] * ((layer + 1) * 2 * plane) for _ in range(nb)]
    blocks = [pool[order[b]] for b in range(nb)]  # the block table
    koff = plane * 2 * layer
    for p in range(P):
        off = koff + (p % block_tokens) * kv_dim
        blocks[p // block_tokens][off:off + kv_dim] = K[p]
        blocks[p // block_tokens][off + plane:off + plane + kv_dim] = V[p]
    scale = 1/math.sqrt(D); qscale = scale * 1.4426950408889634
    rows = T * n_rep
    out = [[[float('nan')]*D for _ in range(n_heads)] for _ in range(T)]
    nblocks = (rows + 63) // 64
    for kvh, bx in [(y, x) for y in range(n_kv) for x in range(nblocks)]:
        m0 = (nblocks - 1 - bx) * 64
        prow = {}; valid = {}; qrow = {}
        for w in range(4):
            for l in range(32):
                g = l >> 2
                for i in range(2):
                    m = m0 + w*16 + g + 8*i
                    valid[w, l, i] = m < rows
                    m = min(m, rows - 1)
                    prow[w, l, i] = pos[m // n_rep]; qrow[w, l, i] = (m // n_rep, kvh * n_rep + m % n_rep)
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
        # shared memory: [2 stages][K, V][TP][S], NaN until staged (a read of
        # an element never staged shows in the output)
        tiles = [float('nan')] * (4 * E)
        stage_tile(blocks, block_tokens, kv_dim, koff, plane, kvh, 0, end, D, tiles, 0, E)
        for j in range(ntiles):
            p0 = j * TP
            if j + 1 < ntiles:
                nxt = ((j + 1) & 1) * 2 * E
                stage_tile(blocks, block_tokens, kv_dim, koff, plane, kvh, p0 + TP, end, D, tiles, nxt, nxt + E)
            sk = (j & 1) * 2 * E; sv = sk + E
            for w in range(4):
                if not p0 <= wmax[w]: continue
                W = st[w]
                s = []
                for nt in range(TP // 8):
                    acc = [[0.0]*4 for _ in range(32)]
                    for kc2 in range(D // 32):
                        b = ldmatrix(tiles, [sk + (nt*8 + (l & 7))*S + kc2*32 + (l >> 3)*8 for l in range(32)], False)
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
                        b = ldmatrix(tiles, [sv + (kk*16 + ((l >> 3) & 1)*8 + (l & 7))*S + d2*16 + (l >> 4)*8 for l in range(32)], True)
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
        for h in range(n_heads):
            g = h // n_rep
            sc = [sum(K[p][g*D + d] * q[t][h][d] for d in range(D)) * scale for p in range(n)]
            mx = max(sc); e = [math.exp(x - mx) for x in sc]; z = sum(e)
            for d in range(D):
                ref = sum(e[p] * V[p][g*D + d] for p in range(n)) / z
                if math.isnan(out[t][h][d]): nans += 1; continue
                num += (out[t][h][d] - ref) ** 2; den += ref * ref
    err = math.sqrt(num / den) if den > 0 else INF  # every output missing
    ok = nans == 0 and err < 1e-2
    print(f"D {D} kv heads {n_kv} n_rep {n_rep} T {T} P {P} block {block_tokens} layer {layer} pad {pad}: missing {nans}, rel L2 {err:.2e} {'ok' if ok else 'FAILED'}", flush=True)
    return ok

# (head_dim, GQA ratio, query rows, positions[, kv heads, block, layer, pad]):
# one row at position 0; two tiles with a prefix in the cache, a partly empty
# block of rows, two kv heads (grid y), 7-position blocks across the tiles,
# the second layer's planes and rows wider than the heads; three tiles at
# head_dim 128 with GQA 3 (a token's heads straddle warps and row blocks).
results = [run(64, 1, 3, 3), run(64, 4, 20, 90, n_kv=2, block_tokens=7, layer=1, pad=8),
           run(128, 3, 40, 150, block_tokens=32)]
sys.exit(0 if all(results) else 1)
