//! The store conformance suite: the same behaviour from every backend.
//!
//! Always runs against SQLite (a temporary file). Runs against PostgreSQL when
//! `GARRISON_TEST_POSTGRES_URL` is set (`.ci/run` starts a throw-away cluster and sets it);
//! each PostgreSQL test gets a database of its own.

mod conformance;

macro_rules! store_conformance_suite {
    ($backend:ident, $make:path) => {
        mod $backend {
            use crate::conformance;
            store_conformance_suite!(@tests $make;
                tenants_are_created_once_and_found_by_name,
                retention_is_validated_and_kept,
                users_authenticate_only_with_their_password_in_their_tenant,
                disabling_a_user_revokes_their_tokens,
                tokens_are_stored_hashed_and_resolve_to_their_tenant,
                expired_and_revoked_tokens_do_not_authenticate,
                sources_upsert_and_stay_in_their_tenant,
                stored_events_are_idempotent_and_move_the_position,
                search_filters_by_time_source_field_and_text,
                search_pages_with_a_cursor_without_gaps_or_repeats,
                tenants_never_see_each_others_events,
                retention_deletes_only_old_events_of_one_tenant,
                bad_cursors_and_filters_are_clear_errors,
                nul_characters_are_stored_without_failing_the_batch,
                rules_import_with_versions_and_stay_in_their_tenant,
                alerts_fold_hits_once_even_when_replayed,
                the_audit_chain_verifies_and_names_the_first_tampered_entry,
                playbook_versions_never_change_and_stay_in_their_tenant,
                runs_save_with_revisions_and_timers_atomically,
                blobs_secrets_and_links_are_scoped_and_single_use,
                workflows_are_versioned_per_tenant,
                incidents_change_by_revision_with_their_timeline,
                incidents_list_with_filters_and_cursors,
                alerts_link_merge_and_split_between_incidents,
                tasks_templates_and_attachments_belong_to_their_incident,
                an_audited_incident_is_created_with_its_audit_entry_or_not_at_all,
                suppressions_count_what_they_hold_back,
                grouping_assets_and_sla_policy_are_per_tenant,
                similar_incidents_and_soc_metrics_come_from_stored_records,
                indicators_upsert_by_kind_value_and_source_per_tenant,
                indicators_page_filter_expire_and_delete,
                feeds_record_their_last_import
            );
        }
    };
    (@tests $make:path; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(fixture) = $make().await else { return };
                conformance::$name(&fixture.store).await;
            }
        )*
    };
}

store_conformance_suite!(sqlite, conformance::sqlite_store);
store_conformance_suite!(postgres, conformance::postgres_store);
