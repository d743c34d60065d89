/* Tree ensembles, compiled: the walks and sums of trees.c, one instance per combination of the
 * working matrix's type (WT), the thresholds' (TT) and the outputs' (DT). Included by trees.c
 * only, after its ``Trees`` and ``Fault`` definitions.
 *
 * A walk advances ``LANES`` walks in lockstep (their chains of dependent loads are independent,
 * so the processor overlaps them), one level per step and without a branch per lane: a leaf is
 * its own child and reads the sentinel column (-inf), so ``child + (x > t)`` keeps it there, as
 * the numpy walk relies on too. A step that moves no lane ends the walk: nothing would move
 * after it either, so the result is the numpy walk's, which always takes ``depth`` steps. NaN
 * inputs take the node's missing bit; a block without NaN (or a forest without missing bits)
 * takes the loop without the test. Every index is checked before it is used. */

#define LANES 8
enum { WALK_NAN = 1, WALK_TRUSTED = 2 };
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* One step of lane ``i``; NAN_RULE: whether a NaN input reads the node's missing bit; CHECK:
 * whether the indices read are checked here (else ``Trees.checked`` found them all in range). */
#define STEP_LANE(WT, i, NAN_RULE, CHECK)                                                     \
    do {                                                                                      \
        npy_intp node_ = nodes[i];                                                            \
        npy_intp column_ = feature[node_];                                                    \
        if (CHECK && UNLIKELY((npy_uintp)column_ >= (npy_uintp)m)) {                          \
            *fault = (Fault){FAULT_FEATURE, node_, column_, 0.0};                             \
            return 0;                                                                         \
        }                                                                                     \
        WT x_ = rows[i][column_];                                                             \
        npy_intp right_ = x_ > threshold[node_];                                              \
        if (NAN_RULE && isnan(x_)) {                                                          \
            right_ = (missing[node_ >> 3] >> (node_ & 7)) & 1;                                \
        }                                                                                     \
        npy_intp next_ = child[node_] + right_;                                               \
        if (CHECK && UNLIKELY((npy_uintp)next_ >= n_nodes)) {                                 \
            *fault = (Fault){FAULT_CHILD, node_, next_, 0.0};                                 \
            return 0;                                                                         \
        }                                                                                     \
        moved |= next_ ^ node_;                                                               \
        nodes[i] = next_;                                                                     \
    } while (0)

/* ``walk_WT_TT(self, rows, m, k, nodes, flags, fault)``: lanes 0..k-1 from ``nodes[i]`` over the
 * working-matrix row ``rows[i]`` (``m`` columns) until no lane moves or ``depth`` steps.
 * ``flags``: WALK_NAN, the rows may hold a NaN; WALK_TRUSTED, every node's indices were found
 * in range for ``m`` columns beforehand (``all_in_range`` in trees.c), so steps skip the checks. */
#define DEFINE_WALK(WT, TT)                                                                   \
    static inline int walk_##WT##_##TT(const Trees *self, const WT *const *rows, npy_intp m,  \
                                       npy_intp k, npy_intp *nodes, int flags, Fault *fault) {  \
        const TT *threshold = (const TT *)self->threshold;                                    \
        const npy_int32 *feature = self->feature, *child = self->child;                       \
        const npy_uint8 *missing = self->missing;                                             \
        const npy_uintp n_nodes = (npy_uintp)self->n_nodes;                                   \
        const npy_intp depth = self->depth;                                                   \
        const int nan_rule = (flags & WALK_NAN) && missing != NULL;                                    \
        const int trusted = (flags & WALK_TRUSTED) != 0;                                                   \
        for (npy_intp step = 0; step < depth; step++) {                                       \
            npy_intp moved = 0;                                                               \
            if (k == LANES && !nan_rule && trusted) { /* the common case, unrolled */         \
                STEP_LANE(WT, 0, 0, 0); STEP_LANE(WT, 1, 0, 0); STEP_LANE(WT, 2, 0, 0);       \
                STEP_LANE(WT, 3, 0, 0); STEP_LANE(WT, 4, 0, 0); STEP_LANE(WT, 5, 0, 0);       \
                STEP_LANE(WT, 6, 0, 0); STEP_LANE(WT, 7, 0, 0);                               \
            } else if (k == LANES && !nan_rule) {                                             \
                STEP_LANE(WT, 0, 0, 1); STEP_LANE(WT, 1, 0, 1); STEP_LANE(WT, 2, 0, 1);       \
                STEP_LANE(WT, 3, 0, 1); STEP_LANE(WT, 4, 0, 1); STEP_LANE(WT, 5, 0, 1);       \
                STEP_LANE(WT, 6, 0, 1); STEP_LANE(WT, 7, 0, 1);                               \
            } else if (!nan_rule) {                                                           \
                for (npy_intp i = 0; i < k; i++) {                                            \
                    STEP_LANE(WT, i, 0, 1);                                                   \
                }                                                                             \
            } else {                                                                          \
                for (npy_intp i = 0; i < k; i++) {                                            \
                    STEP_LANE(WT, i, 1, 1);                                                   \
                }                                                                             \
            }                                                                                 \
            if (!moved) {                                                                     \
                break;                                                                        \
            }                                                                                 \
        }                                                                                     \
        return 1;                                                                             \
    }

DEFINE_WALK(double, double)
DEFINE_WALK(double, float)
DEFINE_WALK(float, double)
DEFINE_WALK(float, float)

/* The root of tree ``t``, checked. */
#define ROOT(t, into)                                                                         \
    do {                                                                                      \
        npy_intp root_ = self->roots[t];                                                      \
        if ((npy_uintp)root_ >= (npy_uintp)self->n_nodes) {                                   \
            *fault = (Fault){FAULT_ROOT, (t), root_, 0.0};                                    \
            return 0;                                                                         \
        }                                                                                     \
        (into) = root_;                                                                       \
    } while (0)

/* Adds the outputs of ``leaf`` to the row's outputs ``o`` (or sets them: the group's first tree
 * without a base). The leaf row is checked as numpy's astype(intp) then gather would take it:
 * truncated toward zero, so (-1, L) reads rows 0..L-1. */
#define ADD(DT, o, leaf, set)                                                                 \
    do {                                                                                      \
        if (values == NULL) {                                                                 \
            DT v_ = (DT)threshold[leaf];                                                      \
            (o)[0] = (set) ? v_ : (o)[0] + v_;                                                \
            break;                                                                            \
        }                                                                                     \
        double payload_ = (double)threshold[leaf];                                            \
        if (!(payload_ > -1.0 && payload_ < (double)self->n_rows)) {                          \
            *fault = (Fault){FAULT_PAYLOAD, (leaf), 0, payload_};                             \
            return 0;                                                                         \
        }                                                                                     \
        const DT *v_ = values + (npy_intp)payload_ * w;                                       \
        if (set) {                                                                            \
            for (npy_intp j_ = 0; j_ < w; j_++) {                                             \
                (o)[j_] = v_[j_];                                                             \
            }                                                                                 \
        } else {                                                                              \
            for (npy_intp j_ = 0; j_ < w; j_++) {                                             \
                (o)[j_] = (o)[j_] + v_[j_];                                                   \
            }                                                                                 \
        }                                                                                     \
    } while (0)

/* The sums of ``n`` rows of ``W`` (``m`` columns) into ``out`` (``n_out`` columns), group by
 * group. A block walks trees outside and rows inside, LANES rows at a time: a tree's nodes stay
 * in cache while every row of the block walks it. Fewer rows than lanes walk LANES trees at a
 * time per row. Either way each output receives its trees one after the other, in order.
 * ``flags``: as the walk's. */
#define DEFINE_SUM(WT, TT, DT)                                                                \
    static int sum_##WT##_##TT##_##DT(const Trees *self, const WT *W, npy_intp n,            \
                                      npy_intp m, DT *out, npy_intp n_out, int flags,        \
                                      Fault *fault) {                                         \
        const TT *threshold = (const TT *)self->threshold;                                    \
        const DT *values = (const DT *)self->leaf_values;                                     \
        const DT *base = (const DT *)self->base;                                              \
        const npy_intp w = self->width;                                                       \
        npy_intp nodes[LANES];                                                                \
        const WT *rows[LANES];                                                                \
        for (npy_intp g = 0; g < self->n_groups; g++) {                                       \
            DT *column = out + g * w;                                                         \
            npy_intp lo = self->groups[g], hi = self->groups[g + 1];                          \
            if (base != NULL || lo == hi) {                                                   \
                for (npy_intp r = 0; r < n; r++) {                                            \
                    for (npy_intp j = 0; j < w; j++) {                                        \
                        column[r * n_out + j] = base != NULL ? base[g * w + j] : (DT)0;       \
                    }                                                                         \
                }                                                                             \
            }                                                                                 \
            if (n < LANES) { /* lanes: trees */                                               \
                for (npy_intp r = 0; r < n; r++) {                                            \
                    DT *o = column + r * n_out;                                               \
                    for (npy_intp i = 0; i < LANES; i++) {                                    \
                        rows[i] = W + r * m;                                                  \
                    }                                                                         \
                    for (npy_intp t0 = lo; t0 < hi; t0 += LANES) {                            \
                        npy_intp k = hi - t0 < LANES ? hi - t0 : LANES;                       \
                        for (npy_intp i = 0; i < k; i++) {                                    \
                            ROOT(t0 + i, nodes[i]);                                           \
                        }                                                                     \
                        if (!walk_##WT##_##TT(self, rows, m, k, nodes, flags, fault)) {         \
                            return 0;                                                         \
                        }                                                                     \
                        for (npy_intp i = 0; i < k; i++) {                                    \
                            ADD(DT, o, nodes[i], base == NULL && t0 + i == lo);               \
                        }                                                                     \
                    }                                                                         \
                }                                                                             \
                continue;                                                                     \
            }                                                                                 \
            for (npy_intp t = lo; t < hi; t++) { /* lanes: rows */                            \
                npy_intp root;                                                                \
                ROOT(t, root);                                                                \
                for (npy_intp r0 = 0; r0 < n; r0 += LANES) {                                  \
                    npy_intp k = n - r0 < LANES ? n - r0 : LANES;                             \
                    for (npy_intp i = 0; i < k; i++) {                                        \
                        nodes[i] = root;                                                      \
                        rows[i] = W + (r0 + i) * m;                                           \
                    }                                                                         \
                    if (!walk_##WT##_##TT(self, rows, m, k, nodes, flags, fault)) {             \
                        return 0;                                                             \
                    }                                                                         \
                    for (npy_intp i = 0; i < k; i++) {                                        \
                        ADD(DT, column + (r0 + i) * n_out, nodes[i], base == NULL && t == lo); \
                    }                                                                         \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
        return 1;                                                                             \
    }

DEFINE_SUM(double, double, double)
DEFINE_SUM(double, double, float)
DEFINE_SUM(double, float, double)
DEFINE_SUM(double, float, float)
DEFINE_SUM(float, double, double)
DEFINE_SUM(float, double, float)
DEFINE_SUM(float, float, double)
DEFINE_SUM(float, float, float)
