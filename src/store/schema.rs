//! One schema over portable column types, shared by both backends.

diesel::table! {
    clients (client_id) {
        client_id -> Text,
        name -> Text,
        registration_number -> Nullable<Text>,
        country -> Text,
        sector -> Nullable<Text>,
        currency -> Text,
        status -> Text,
        is_prospect -> Bool,
        credit_limit_minor -> BigInt,
        open_invoices_minor -> BigInt,
        invoices_paid -> BigInt,
        paid_late -> BigInt,
        total_days_late -> BigInt,
        insurer -> Nullable<Text>,
        insured_minor -> Nullable<BigInt>,
        insurance_valid_until -> Nullable<Date>,
        score_provider -> Nullable<Text>,
        external_score -> Nullable<BigInt>,
        external_score_as_of -> Nullable<Date>,
        legal_status -> Text,
        risk_score -> Nullable<BigInt>,
        risk_band -> Nullable<Text>,
        risk_factors -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        insurance_changed_at -> Nullable<Timestamp>,
        legal_status_changed_at -> Nullable<Timestamp>,
        next_review_on -> Nullable<Date>,
        version -> BigInt,
        open_dues -> Text,
    }
}

diesel::table! {
    audit_records (sequence) {
        sequence -> BigInt,
        kind -> Text,
        subject -> Text,
        client_id -> Nullable<Text>,
        actor -> Text,
        recorded_at -> Timestamp,
        payload -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    audit_head (id) {
        id -> Integer,
        sequence -> BigInt,
        hash -> Text,
    }
}

diesel::table! {
    policies (name) {
        name -> Text,
        trigger_name -> Text,
        position -> Integer,
        active_version -> Nullable<Integer>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    policy_versions (policy, version) {
        policy -> Text,
        version -> Integer,
        source -> Text,
        sha256 -> Text,
        description -> Text,
        author -> Text,
        tests -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    policy_activations (policy, audit_sequence) {
        policy -> Text,
        version -> Integer,
        activated_by -> Text,
        activated_at -> Timestamp,
        audit_sequence -> BigInt,
    }
}

diesel::table! {
    policy_generation (id) {
        id -> Integer,
        generation -> BigInt,
    }
}

diesel::joinable!(policy_versions -> policies (policy));
diesel::allow_tables_to_appear_in_same_query!(policies, policy_versions, policy_activations);

diesel::table! {
    shadow_runs (started_sequence) {
        started_sequence -> BigInt,
        policy -> Text,
        version -> Integer,
        sample_rate -> Text,
        started_at -> Timestamp,
        started_by -> Text,
        stopped_sequence -> Nullable<BigInt>,
        stopped_at -> Nullable<Timestamp>,
        stopped_by -> Nullable<Text>,
        skipped -> BigInt,
    }
}

diesel::table! {
    shadow_results (run, sequence) {
        run -> BigInt,
        sequence -> BigInt,
        decision_id -> Text,
        client_id -> Text,
        changed -> Bool,
        recorded -> Text,
        challenger -> Text,
    }
}

diesel::table! {
    reservations (decision_id) {
        decision_id -> Text,
        client_id -> Text,
        amount_minor -> BigInt,
        status -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        settled_at -> Nullable<Timestamp>,
        settled_by -> Nullable<Text>,
    }
}

// SQLite only: each client's running total of active reservations (migration 000012).
diesel::table! {
    client_reserved (client_id) {
        client_id -> Text,
        active_minor -> BigInt,
        changes -> BigInt,
    }
}

diesel::table! {
    decisions (decision_id) {
        decision_id -> Text,
        request_id -> Text,
        request_sha256 -> Text,
        client_id -> Text,
        outcome -> Text,
        channel -> Text,
        approved_minor -> BigInt,
        decided_at -> Timestamp,
        resolves -> Nullable<Text>,
        actor -> Text,
        answer -> Text,
        audit_sequence -> BigInt,
    }
}

diesel::table! {
    client_events (seq) {
        seq -> BigInt,
        event_id -> Text,
        client_id -> Text,
        event_type -> Text,
        occurred_at -> Timestamp,
        received_at -> Timestamp,
        received_by -> Text,
        body_sha256 -> Text,
        body -> Text,
    }
}

diesel::table! {
    review_resolutions (review_id) {
        review_id -> Text,
        resolution_id -> Text,
        resolved_by -> Text,
        resolved_at -> Timestamp,
    }
}
diesel::allow_tables_to_appear_in_same_query!(audit_records, decisions, review_resolutions);

diesel::table! {
    invoices (client_id, invoice_id) {
        client_id -> Text,
        invoice_id -> Text,
        amount_minor -> Nullable<BigInt>,
        issued_on -> Nullable<Date>,
        due_on -> Nullable<Date>,
        decision_id -> Nullable<Text>,
        paid_minor -> BigInt,
        credited_minor -> BigInt,
        open_minor -> BigInt,
        last_paid_on -> Nullable<Date>,
        dunning_level -> Integer,
        settled_on -> Nullable<Date>,
    }
}

diesel::table! {
    sales_alerts (event_seq) {
        event_seq -> BigInt,
        client_id -> Text,
        negative -> Bool,
        occurred_at -> Timestamp,
    }
}

diesel::table! {
    captured_cases (id) {
        id -> Text,
        sequence -> BigInt,
        decision_id -> Text,
        policies -> Text,
        expected -> Text,
        captured_by -> Text,
        captured_at -> Timestamp,
        audit_sequence -> BigInt,
    }
}

diesel::table! {
    captured_case_supersessions (policy, version, case_id) {
        policy -> Text,
        version -> Integer,
        case_id -> Text,
    }
}
