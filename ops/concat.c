#include "ops/concat.h"

#include <string.h>

#include "base/threads.h"

#define GRAIN_FLOATS 32768L

struct concat_job {
    float *out;              /* forward: output; backward: unused */
    const float *dout;       /* backward only */
    const float *const *in;  /* forward only */
    float *const *din;       /* backward only */
    const int *channels;
    int count;
    long total;              /* sum of channels */
};

static void concat_fwd_range(void *ctx, long begin, long end)
{
    const struct concat_job *j = ctx;
    for (long m = begin; m < end; m++) {
        float *dst = j->out + m * j->total;
        for (int i = 0; i < j->count; i++) {
            long c = j->channels[i];
            if (j->in[i]) memcpy(dst, j->in[i] + m * c, (size_t)c * sizeof(float));
            dst += c;
        }
    }
}

static long total_channels(const int *channels, int count)
{
    long t = 0;
    for (int i = 0; i < count; i++) t += channels[i];
    return t;
}

static long grain(long total) { return total > 0 && total < GRAIN_FLOATS ? GRAIN_FLOATS / total : 1; }

void nn_concat_forward(float *out, const float *const *in, const int *channels, int count, long M)
{
    struct concat_job j = {.out = out, .in = in, .channels = channels, .count = count};
    j.total = total_channels(channels, count);
    nn_parallel_for(M, grain(j.total), concat_fwd_range, &j);
}

static void concat_bwd_range(void *ctx, long begin, long end)
{
    const struct concat_job *j = ctx;
    for (long m = begin; m < end; m++) {
        const float *src = j->dout + m * j->total;
        for (int i = 0; i < j->count; i++) {
            long c = j->channels[i];
            float *dst = j->din[i] ? j->din[i] + m * c : NULL;
            if (dst)
                for (long k = 0; k < c; k++) dst[k] += src[k];
            src += c;
        }
    }
}

void nn_concat_backward(float *const *din, const float *dout, const int *channels, int count, long M)
{
    struct concat_job j = {.dout = dout, .din = din, .channels = channels, .count = count};
    j.total = total_channels(channels, count);
    nn_parallel_for(M, grain(j.total), concat_bwd_range, &j);
}
