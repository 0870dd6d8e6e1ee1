/* Test harness for kerf's emitted math routines on a cross target (run under qemu).
 * Links against an object holding kerf_math_<op>_f32 (and _f32x4 when KERF_VECTOR=1), each
 * `void f(const float *src, float *dst, int64_t n)`, sweeps them against libm in double
 * precision and prints one "<metric> <value>" line per check; the Rust test compares the values
 * with the documented bounds. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void kern(const float *, float *, int64_t);
#define OPS(X) X(exp) X(log) X(tanh) X(sigmoid) X(erf) X(gelu) X(gelu_tanh) X(floor_native) X(floor_soft)
#define DECL_S(n) extern kern kerf_math_##n##_f32;
OPS(DECL_S)
#if KERF_VECTOR
#define DECL_V(n) extern kern kerf_math_##n##_f32x4;
OPS(DECL_V)
#define VEC(n) kerf_math_##n##_f32x4
#else
#define VEC(n) 0
#endif

#define N 262144
static float xs[N], ys[N], yv[N];

static float from_bits(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }
static uint32_t to_bits(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }

static double ulp_err(float r, double ref) {
    if (isnan(ref)) return isnan(r) ? 0 : INFINITY;
    float rounded = (float)ref;
    if (isinf(rounded) || isnan(r) || isinf(r)) return r == rounded ? 0 : INFINITY;
    int e;
    if (ref == 0) e = -126; else { frexp(ref, &e); e -= 1; if (e < -126) e = -126; }
    return fabs((double)r - ref) / ldexp(1.0, e - 23);
}

static double abs_err(float r, double ref, int scale) {
    if (isnan(ref) || isnan(r)) return (isnan(ref) && isnan(r)) ? 0 : INFINITY;
    if (isinf(ref) || isinf(r)) return (double)r == ref ? 0 : INFINITY;
    double d = fabs((double)r - ref);
    return scale ? d / fmax(1.0, fabs(ref)) : d;
}

enum { M_ULP, M_ABS, M_REL };
struct op { const char *metric; kern *s, *v; double (*ref)(double); int kind; float lo, hi; int positive; };

static double sigmoid_ref(double x) { return 1.0 / (1.0 + exp(-x)); }
static double gelu_ref(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static double gelu_tanh_ref(double x) {
    if (isinf(x)) return x < 0 ? -0.0 : x;
    double u = sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
    return x / (1.0 + exp(-2.0 * u));
}

static long mismatches;

static void fill(const struct op *o) {
    /* Half a dense linspace over the useful range, half a sweep over all exponents. */
    for (int i = 0; i < N / 2; i++) xs[i] = o->lo + (o->hi - o->lo) * ((float)i / (N / 2 - 1));
    for (int i = N / 2; i < N; i++) {
        uint32_t b = (uint32_t)((uint64_t)(i - N / 2) * 0x7f7fffffu / (N / 2));
        xs[i] = from_bits(b | ((!o->positive && (i & 1)) ? 0x80000000u : 0));
    }
}

static void compare_forms(void) {
    for (int i = 0; i < N; i++)
        if (to_bits(ys[i]) != to_bits(yv[i]) && !(isnan(ys[i]) && isnan(yv[i]))) mismatches++;
}

static double run(const struct op *o) {
    fill(o);
    o->s(xs, ys, N);
    if (o->v) { o->v(xs, yv, N); compare_forms(); }
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double ref = o->ref(xs[i]);
        double e = o->kind == M_ULP ? ulp_err(ys[i], ref) : abs_err(ys[i], ref, o->kind == M_REL);
        if (!(e <= worst)) worst = e;
    }
    return worst;
}

static float one(kern *f, float x) { float y; f(&x, &y, 1); return y; }

/* Counts a failed special-value check and names it on stderr. */
static long check(int ok, const char *what) {
    if (!ok) fprintf(stderr, "special value check failed: %s\n", what);
    return !ok;
}

int main(void) {
    const struct op ops[] = {
        {"exp_ulp", kerf_math_exp_f32, VEC(exp), exp, M_ULP, -87.0f, 88.0f, 0},
        {"log_ulp", kerf_math_log_f32, VEC(log), log, M_ULP, 1e-3f, 1e3f, 1},
        {"tanh_abs", kerf_math_tanh_f32, VEC(tanh), tanh, M_ABS, -20.0f, 20.0f, 0},
        {"sigmoid_abs", kerf_math_sigmoid_f32, VEC(sigmoid), sigmoid_ref, M_ABS, -20.0f, 20.0f, 0},
        {"erf_abs", kerf_math_erf_f32, VEC(erf), erf, M_ABS, -20.0f, 20.0f, 0},
        {"gelu_rel", kerf_math_gelu_f32, VEC(gelu), gelu_ref, M_REL, -20.0f, 20.0f, 0},
        {"gelu_tanh_rel", kerf_math_gelu_tanh_f32, VEC(gelu_tanh), gelu_tanh_ref, M_REL, -20.0f, 20.0f, 0},
    };
    for (unsigned i = 0; i < sizeof ops / sizeof ops[0]; i++) printf("%s %.9g\n", ops[i].metric, run(&ops[i]));

    long floor_wrong = 0;
    kern *floors[] = {kerf_math_floor_native_f32, kerf_math_floor_soft_f32, VEC(floor_native), VEC(floor_soft)};
    struct op fo = {"", 0, 0, 0, 0, -10.0f, 10.0f, 0};
    fill(&fo);
    for (unsigned k = 0; k < 4; k++) {
        if (!floors[k]) continue;
        floors[k](xs, ys, N);
        for (int i = 0; i < N; i++) {
            float want = floorf(xs[i]);
            if (to_bits(ys[i]) != to_bits(want) && !(isnan(want) && isnan(ys[i]))) floor_wrong++;
        }
    }
    printf("floor_wrong %ld\n", floor_wrong);
    printf("vector_mismatch %ld\n", mismatches);

    long special_wrong = 0;
    special_wrong += check(!(one(kerf_math_exp_f32, INFINITY) != INFINITY), "one(kerf_math_exp_f32, INFINITY) != INFINITY");
    special_wrong += check(!(to_bits(one(kerf_math_exp_f32, -INFINITY)) != 0), "to_bits(one(kerf_math_exp_f32, -INFINITY)) != 0");
    special_wrong += check(!(!isnan(one(kerf_math_exp_f32, NAN))), "!isnan(one(kerf_math_exp_f32, NAN))");
    special_wrong += check(!(one(kerf_math_log_f32, 0.0f) != -INFINITY), "one(kerf_math_log_f32, 0.0f) != -INFINITY");
    special_wrong += check(!(!isnan(one(kerf_math_log_f32, -1.0f))), "!isnan(one(kerf_math_log_f32, -1.0f))");
    special_wrong += check(!(one(kerf_math_log_f32, INFINITY) != INFINITY), "one(kerf_math_log_f32, INFINITY) != INFINITY");
    special_wrong += check(!(one(kerf_math_tanh_f32, -INFINITY) != -1.0f), "one(kerf_math_tanh_f32, -INFINITY) != -1.0f");
    special_wrong += check(!(one(kerf_math_sigmoid_f32, -INFINITY) != 0.0f), "one(kerf_math_sigmoid_f32, -INFINITY) != 0.0f");
    special_wrong += check(!(one(kerf_math_sigmoid_f32, INFINITY) != 1.0f), "one(kerf_math_sigmoid_f32, INFINITY) != 1.0f");
    special_wrong += check(!(one(kerf_math_erf_f32, -INFINITY) != -1.0f), "one(kerf_math_erf_f32, -INFINITY) != -1.0f");
    special_wrong += check(!(one(kerf_math_gelu_f32, -INFINITY) != 0.0f), "one(kerf_math_gelu_f32, -INFINITY) != 0.0f");
    special_wrong += check(!(one(kerf_math_gelu_f32, INFINITY) != INFINITY), "one(kerf_math_gelu_f32, INFINITY) != INFINITY");
    special_wrong += check(!(one(kerf_math_gelu_tanh_f32, -INFINITY) != 0.0f), "one(kerf_math_gelu_tanh_f32, -INFINITY) != 0.0f");
    special_wrong += check(!(one(kerf_math_gelu_tanh_f32, INFINITY) != INFINITY), "one(kerf_math_gelu_tanh_f32, INFINITY) != INFINITY");
    special_wrong += check(!(to_bits(one(kerf_math_floor_soft_f32, -0.0f)) != 0x80000000u), "to_bits(one(kerf_math_floor_soft_f32, -0.0f)) != 0x80000000u");
    printf("special_wrong %ld\n", special_wrong);
    return 0;
}
