/* suites.h - one Check suite per module; main.c runs them all. */
#ifndef GREET_TEST_SUITES_H
#define GREET_TEST_SUITES_H

#include <check.h>

Suite *buf_suite(void);
Suite *utf8_suite(void);
Suite *log_suite(void);
Suite *config_suite(void);
Suite *mq_url_suite(void);
Suite *db_url_suite(void);
Suite *job_suite(void);
Suite *greet_suite(void);
Suite *reply_suite(void);
Suite *backoff_suite(void);
Suite *jobsource_suite(void);
Suite *jsonw_suite(void);
Suite *stdfds_suite(void);
Suite *confirms_suite(void);
Suite *ledger_suite(void);
Suite *prom_suite(void);
Suite *metrics_suite(void);
Suite *token_suite(void);
Suite *admin_dead_suite(void);
Suite *admin_migration_suite(void);
Suite *admin_rows_suite(void);

#endif
