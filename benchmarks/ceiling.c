/* The C ceiling: one fused loop that reads NIN float arrays and writes NOUT of them in place,
   i.e. exactly the bytes an optimizer update moves. Compiled by _common.py with
   cc -O3 -march=native -fopenmp (both cores, as XLA uses them). */
#include <stddef.h>
#define LOOP(BODY) _Pragma("omp parallel for simd if(n > (1 << 18))") for (size_t i = 0; i < n; i++) { BODY }
void stream(float **a, int nin, int nout, size_t n, float c) {
  float *restrict a0 = a[0], *restrict a1 = a[1], *restrict a2 = nin > 2 ? a[2] : 0,
        *restrict a3 = nin > 3 ? a[3] : 0, *restrict a4 = nin > 4 ? a[4] : 0;
  if (nin == 2 && nout == 1) { LOOP(a0[i] += c * a1[i];) }
  else if (nin == 3 && nout == 2) { LOOP(float s = a2[i] * c + a1[i]; a2[i] = s; a0[i] -= c * s;) }
  else if (nin == 4 && nout == 3) {
    LOOP(float g = a1[i]; float m = a2[i] + c * (g - a2[i]); float v = a3[i] * c + g * g;
         a2[i] = m; a3[i] = v; a0[i] -= c * m / (v + 1e-8f);)
  } else if (nin == 5 && nout == 4) {
    LOOP(float g = a1[i]; float m = a2[i] + c * (g - a2[i]); float v = a3[i] * c + g * g;
         float w = a4[i] > v ? a4[i] : v; a2[i] = m; a3[i] = v; a4[i] = w;
         a0[i] -= c * m / (w + 1e-8f);)
  }
}
