//! `login-timing`: logins of an unknown user and with a wrong password, one
//! call at a time, alternating; the two distributions should be the same.

use std::time::Instant;

use bookstore_bench::print_report;
use bookstore_bench::stats::{Latency, new_histogram};
use bookstore_proto::auth::v1::LoginRequest;
use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use clap::Args;
use serde::Serialize;

use crate::targets::{Account, Targets, lazy_channel, prepare_account};

#[derive(Debug, Args)]
pub(crate) struct LoginTimingArgs {
    /// Logins of each kind.
    #[arg(long, default_value_t = 200)]
    samples: u32,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    targets: Targets,
    #[command(flatten)]
    account: Account,
}

#[derive(Debug, Serialize)]
struct LoginTimingReport {
    samples: u32,
    unknown_user: Latency,
    wrong_password: Latency,
    /// Median of unknown-user logins minus median of wrong-password ones.
    median_difference_us: i64,
    /// Calls that did not answer Unauthenticated.
    unexpected: u64,
}

pub(crate) async fn login_timing(args: LoginTimingArgs) -> anyhow::Result<()> {
    prepare_account(&args.targets, &Account { books: 0, ..args.account.clone() }).await?;
    let mut auth = AuthServiceClient::new(lazy_channel(&args.targets.auth_url)?);
    let mut unknown = new_histogram();
    let mut wrong = new_histogram();
    let mut unexpected = 0;
    // A few of each first, so connection set-up is not measured.
    for round in 0..args.samples + 5 {
        for unknown_user in [round % 2 == 0, round % 2 != 0] {
            let request = if unknown_user {
                LoginRequest { name: format!("bench-nobody-{}", round % 7), password: args.account.password.clone() }
            } else {
                LoginRequest { name: args.account.user.clone(), password: "bench-wrong-password".into() }
            };
            let started = Instant::now();
            let result = auth.login(request).await;
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            if !matches!(&result, Err(status) if status.code() == tonic::Code::Unauthenticated) {
                unexpected += 1;
            }
            if round >= 5 {
                let histogram = if unknown_user { &mut unknown } else { &mut wrong };
                histogram.saturating_record(micros.max(1));
            }
        }
    }
    let unknown_user = Latency::of(&unknown);
    let wrong_password = Latency::of(&wrong);
    let report = LoginTimingReport {
        samples: args.samples,
        median_difference_us: i64::try_from(unknown_user.p50_us).unwrap_or(0)
            - i64::try_from(wrong_password.p50_us).unwrap_or(0),
        unknown_user,
        wrong_password,
        unexpected,
    };
    print_report(&report, args.json, |report| {
        println!(
            "unknown user:   mean {:.2} ms; {}",
            report.unknown_user.mean_us / 1000.0,
            report.unknown_user.describe()
        );
        println!(
            "wrong password: mean {:.2} ms; {}",
            report.wrong_password.mean_us / 1000.0,
            report.wrong_password.describe()
        );
        println!("median difference {} us; {} unexpected answers", report.median_difference_us, report.unexpected);
    })
}
