#include <stdio.h>

#include "base/cpu.h"
#include "base/threads.h"
#include "tools/commands.h"

int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("nn 0.1.0 (simd %s, %d threads)\n", nn_simd_name(nn_simd_level()), nn_threads_get());
    return 0;
}
