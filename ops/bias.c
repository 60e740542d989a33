#include "ops/bias.h"

#include "base/threads.h"

struct bias_job {
    float *y;
    const float *bias;
    int C;
};

static void bias_rows(void *ctx, long begin, long end)
{
    const struct bias_job *j = ctx;
    for (long m = begin; m < end; m++) {
        float *row = j->y + m * j->C;
        for (int c = 0; c < j->C; c++) {
            float v = row[c] + j->bias[c];
            row[c] = v > 0.0f ? v : 0.0f;
        }
    }
}

void nn_bias_relu_forward(float *y, const float *bias, long M, int C)
{
    struct bias_job j = {y, bias, C};
    nn_parallel_for(M, 256, bias_rows, &j);
}
