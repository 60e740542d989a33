/* Runs every Check suite (the list is generated from tests/test_*.c).
 * CK_RUN_SUITE=name runs one suite; CK_RUN_CASE=name one case. */
#include <check.h>
#include <stdlib.h>

#include "base/threads.h"

#define SUITE(name) Suite *suite_##name(void);
#include "suites.h"
#undef SUITE

int main(void)
{
    SRunner *runner = srunner_create(NULL);
#define SUITE(name) srunner_add_suite(runner, suite_##name());
#include "suites.h"
#undef SUITE
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    nn_threads_shutdown();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
