//! The rule suite: every rule of SLS_RULES.md the core owns, by name, on a fake clock (24 hours
//! pass in a microsecond; every boundary is tested on both sides), generic over the store:
//! each kind of store listed at the bottom runs every rule test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;
mod harness;

mod accounts;
mod challenges;
mod inspect;
mod lifecycle;
mod limits;
mod lockout;
mod nodes;
mod push;
mod redis;
mod replay;
mod replicas;
mod sealed;
mod shared_limits;
mod sharing;
mod temporary;
mod withdrawals;

/// Instantiates every generic rule test for one store kind.
macro_rules! rule_suite {
    ($kind:ty; $($module:ident :: $test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                crate::$module::$test::<$kind>();
            }
        )*
    };
}

/// Every generic rule test, then `$extra` (name, fn) pairs, in one sequence: for a store whose tests share one costly fixture
/// (the Redis cluster), run by one test that owns it.
macro_rules! rule_sequence {
    ($name:ident, $kind:ty, $fixture:expr, $extra:expr; $($module:ident :: $test:ident),* $(,)?) => {
        #[test]
        fn $name() {
            let _fixture = $fixture;
            let start = std::time::Instant::now();
            let mut failed = Vec::new();
            let mut ran = 0;
            $(
                ran += 1;
                match crate::redis::run(stringify!($test), crate::$module::$test::<$kind>) {
                    Ok(took) => eprintln!("ok   {:>8.2?}  {}", took, stringify!($test)),
                    Err(e) => {
                        eprintln!("FAIL {e}");
                        failed.push(e);
                    }
                }
            )*
            for (name, test) in $extra.iter() {
                ran += 1;
                match crate::redis::run(name, *test) {
                    Ok(took) => eprintln!("ok   {took:>8.2?}  {name}"),
                    Err(e) => {
                        eprintln!("FAIL {e}");
                        failed.push(e);
                    }
                }
            }
            eprintln!("{ran} rule tests in {:.1?}, {} failed", start.elapsed(), failed.len());
            assert!(failed.is_empty(), "failed: {failed:#?}");
        }
    };
}

/// Calls `$callback!($($args)*; every generic rule test)`.
macro_rules! with_every_rule {
    ($callback:ident ! ($($args:tt)*)) => {
        $callback!($($args)*;
            challenges::open_challenges_per_user_are_bounded,
            challenges::r5_dsc_plus_six_digit_challenge_eight_digit_answer_with_pin,
            challenges::r10_user_names_bad_character_and_case_sensitive,
            challenges::r10_malformed_answers_are_an_error_and_count_by_default,
            challenges::r12_one_answer_one_use_and_expiry,
            challenges::r9_scc_positions_and_codes,
            challenges::r1_every_permanent_kind_answers_its_own_way_and_legacy_cards_are_honoured,
            challenges::r1_sms_passcode_until_ib_key_is_activated,
            accounts::r19_bulk_enrolment_creates_users_and_refuses_bad_records_one_by_one,
            accounts::r7_pins,
            accounts::r18_opt_out_logs_in_without_device_and_only_the_primary_opts_back_in,
            accounts::r20_dsc_plus_needs_the_equity_threshold,
            accounts::r22_ib_key_activation_and_recovery_by_sms_token,
            accounts::r22_five_wrong_activation_tokens_void_the_activation,
            accounts::r19_the_three_enrolment_paths,
            lockout::r11_ten_failures_lock_and_the_lock_holds_against_the_right_answer,
            lockout::r11_lock_holds_24h_after_last_failure,
            lockout::r11_attempts_while_locked_do_not_extend_the_lock,
            lockout::r11_failures_count_only_within_24h,
            lockout::r11_password_failures_count_and_success_resets,
            lockout::r11_admin_unlock,
            lockout::r11_exact_under_concurrency_64_threads,
            lockout::r11_a_right_answer_racing_the_10th_failure_never_slips_through,
            lockout::r11_only_locked_after_ten_failures_with_no_success_between,
            withdrawals::r4_m2fs_several_devices_and_withdrawals_need_a_covering_device,
            withdrawals::r3_daily_totals_count,
            withdrawals::r3_limits_hold_for_a_withdrawal_confirmed_after_another,
            withdrawals::r3_limits_hold_for_a_withdrawal_approved_by_push_after_another,
            lockout::r11_an_unknown_name_counts_down_as_a_known_user_with_no_device,
            withdrawals::r18_r3_an_opted_out_users_withdrawals_add_up_over_five_business_days,
            accounts::r18_users_without_entity_data_share_no_account,
            accounts::r18_kind_none_is_not_enrolled_as_a_device,
            temporary::r16_r15_auto_activation_at_21_days_retires_the_old_card_and_voids_temporaries,
            temporary::r15_ib_key_activation_or_recovery_voids_temporaries,
            push::r6_push_approval_with_number_matching_and_r21_grants,
            push::r6_an_app_cannot_answer_another_devices_push,
            push::r6_fallback_challenge_when_the_app_is_not_connected,
            push::push_fatigue_cap_falls_back_to_a_typed_challenge,
            temporary::r13_temporary_code_two_days_full_ten_days_portal_then_expired,
            temporary::r14_online_scc_21_days_and_r15_reactivation_voids_temporary_devices,
            temporary::r16_replacement_auto_activates_three_weeks_after_shipment,
            temporary::r16_a_replacement_activates_only_once_shipped,
            limits::rate_limits_per_user_per_client_follow_the_clock,
            limits::mass_lockout_is_signalled,
            sharing::r17_sharing_same_entity_is_approved_at_once_and_cancel_restores,
            sharing::r17_same_identification_waits_for_compliance,
            sharing::r17_the_three_prerequisites_and_their_named_errors,
            sharing::r17_a_wrong_owner_answer_is_refused_and_counts,
            sharing::r17_compliance_lists_the_live_shares_page_by_page,
            lifecycle::revocation_stops_a_lost_card_at_once_and_keeps_interim_access,
            lifecycle::suspension_holds_the_card_and_its_copies_until_resumed,
            lifecycle::a_challenge_open_before_a_suspension_stays_void_after_the_resume,
            lifecycle::a_removed_device_is_gone_its_challenges_void_and_its_copies_stop,
            lifecycle::r17_a_copy_stops_when_its_source_is_replaced_by_activate,
            lifecycle::r17_a_copy_stops_at_its_sources_auto_activation,
            lifecycle::r17_a_user_without_entity_shares_no_entity_by_name,
            lifecycle::r17_share_decide_rechecks_the_prerequisites_and_the_source,
            lifecycle::r17_self_share_is_refused_by_name,
            lifecycle::r16_reactivate_follows_the_replacement_states,
            lifecycle::devices_per_user_are_capped_and_the_lists_stay_within_it,
            lifecycle::r13_a_new_temporary_code_voids_the_previous_one,
            lifecycle::r18_an_account_without_primary_opts_back_in_by_override,
            lifecycle::r3_a_withdrawal_that_did_not_execute_is_released_by_its_transaction,
            inspect::r17_identification_is_canonical_and_update_user_records_the_account
        );
    };
}

macro_rules! every_rule {
    ($kind:ty) => {
        with_every_rule!(rule_suite!($kind));
    };
}

/// The embedded store: memory + journal, the daemon's default.
mod embedded {
    every_rule!(crate::harness::Embedded);
}

/// The cluster store on a real 6-node Redis Cluster, started and stopped by the one test that
/// runs every rule on it.
mod redis_cluster {
    with_every_rule!(rule_sequence!(
        every_rule_on_a_redis_cluster,
        crate::redis::Redis,
        crate::redis::Cluster::start(),
        // The nodes' tests last: the last of them stops the cluster.
        [
            crate::sealed::TESTS,
            crate::shared_limits::TESTS,
            crate::replicas::TESTS,
            crate::nodes::TESTS,
        ]
        .concat()
    ));
}
