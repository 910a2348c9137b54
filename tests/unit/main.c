/* main.c - runs every unit suite; Check prints the summary line. */
#include "suites.h"

#include <stdlib.h>

int main(void)
{
    SRunner *runner = srunner_create(buf_suite());
    int failed;

    srunner_add_suite(runner, utf8_suite());
    srunner_add_suite(runner, log_suite());
    srunner_add_suite(runner, config_suite());
    srunner_add_suite(runner, mq_url_suite());
    srunner_add_suite(runner, db_url_suite());
    srunner_add_suite(runner, job_suite());
    srunner_add_suite(runner, greet_suite());
    srunner_add_suite(runner, reply_suite());
    srunner_add_suite(runner, backoff_suite());
    srunner_add_suite(runner, jobsource_suite());
    srunner_add_suite(runner, jsonw_suite());
    srunner_add_suite(runner, stdfds_suite());
    srunner_add_suite(runner, confirms_suite());
    srunner_add_suite(runner, ledger_suite());
    srunner_add_suite(runner, prom_suite());
    srunner_add_suite(runner, metrics_suite());
    srunner_add_suite(runner, token_suite());
    srunner_add_suite(runner, admin_dead_suite());
    srunner_add_suite(runner, admin_migration_suite());
    srunner_add_suite(runner, admin_rows_suite());
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
