//! systemd: the notify protocol `berth up` speaks when systemd starts it (`Type=notify`),
//! and `berth systemd-unit`, which writes the unit for this app.
//!
//! The protocol (sd_notify(3)): datagrams of `KEY=VALUE` lines to the unix socket named by
//! `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading `@`): `READY=1`
//! once every component is up, `STATUS=…` in words, `WATCHDOG=1` every half of
//! `$WATCHDOG_USEC` while the event loop runs, `RELOADING=1` and `STOPPING=1`.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// The socket systemd listens on, if it started berth with `Type=notify`.
pub struct Notifier {
    socket: UnixDatagram,
    addr: std::os::unix::net::SocketAddr,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; `None` when berth was not started by systemd (or the
    /// socket cannot be used, which is logged).
    pub fn from_env() -> Option<Self> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        let name = name.to_string_lossy().into_owned();
        let addr = if let Some(abstract_name) = name.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
        } else {
            std::os::unix::net::SocketAddr::from_pathname(&name)
        };
        let made = addr.and_then(|addr| Ok((UnixDatagram::unbound()?, addr)));
        match made {
            Ok((socket, addr)) => Some(Self { socket, addr }),
            Err(e) => {
                tracing::warn!(socket = %name, error = %e, "NOTIFY_SOCKET is set but cannot be used; systemd is not told berth's state");
                None
            }
        }
    }

    /// Sends one message (`KEY=VALUE` lines); a failure is logged, never fatal.
    pub fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }
}

/// How often systemd wants a `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when it is set for
/// this process (`$WATCHDOG_PID`, if set, names it).
pub fn watchdog_every() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_string_lossy() != std::process::id().to_string()
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// `berth systemd-unit`.
#[derive(Debug, clap::Args)]
pub struct UnitArgs {
    /// A user unit (`systemctl --user`), for a team without root; default: a system unit
    /// run as the current user.
    #[arg(long)]
    pub user: bool,
    /// Write the unit where systemd reads it (`/etc/systemd/system`, or
    /// `~/.config/systemd/user` with --user) instead of printing it.
    #[arg(long)]
    pub write: bool,
}

/// Prints (or writes) the systemd unit that runs `berth up` for this config.
pub fn unit(ctx: &super::Ctx, args: &UnitArgs) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context as _;
    let config = ctx.config()?;
    let path = std::fs::canonicalize(&config.path)
        .with_context(|| format!("cannot resolve {}", config.path.display()))?;
    let dir = path.parent().unwrap_or(std::path::Path::new("/"));
    let berth = std::env::current_exe().context("cannot tell where this berth binary is")?;
    let app = &config.app.name;
    let name = format!("berth-{app}.service");
    let env_file = dir.join(".env");
    // berth stops its services itself on SIGTERM, within the grace; systemd waits a
    // little longer before it kills what is left.
    let stop_timeout = config.app.shutdown_grace.as_secs() + 30;
    let user_line = if args.user {
        String::new()
    } else {
        let user = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| "root".into());
        format!("User={user}\n")
    };
    let under_home = dir.starts_with("/home") || dir.starts_with("/root");
    // A private /tmp would hide an app that lives in /tmp.
    let under_tmp = dir.starts_with("/tmp") || dir.starts_with("/var/tmp");
    let unit = format!(
        "# Written by `berth systemd-unit` for the app `{app}`.\n\
         [Unit]\n\
         Description=berth: {app} ({dir})\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         {user_line}\
         WorkingDirectory={dir}\n\
         EnvironmentFile=-{env}\n\
         ExecStart={berth} --config {config} up\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         Restart=on-failure\n\
         RestartSec=2s\n\
         TimeoutStartSec=120s\n\
         TimeoutStopSec={stop_timeout}s\n\
         KillMode=mixed\n\
         WatchdogSec=60s\n\
         LimitNOFILE=65536\n\
         NoNewPrivileges=yes\n\
         {tmp}\
         ProtectSystem=full\n\
         {home}\
         \n\
         [Install]\n\
         WantedBy={wanted}\n",
        dir = dir.display(),
        env = env_file.display(),
        berth = berth.display(),
        config = path.display(),
        home = if under_home {
            ""
        } else {
            "ProtectHome=read-only\n"
        },
        wanted = if args.user {
            "default.target"
        } else {
            "multi-user.target"
        },
        tmp = if under_tmp { "" } else { "PrivateTmp=yes\n" },
    );
    if !args.write {
        print!("{unit}");
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let target = if args.user {
        let home = std::env::var_os("HOME").context("HOME is not set")?;
        std::path::PathBuf::from(home).join(".config/systemd/user")
    } else {
        std::path::PathBuf::from("/etc/systemd/system")
    };
    std::fs::create_dir_all(&target)
        .with_context(|| format!("cannot create {}", target.display()))?;
    let file = target.join(&name);
    std::fs::write(&file, &unit).with_context(|| {
        format!(
            "cannot write {} (a system unit needs root; --user writes a user unit)",
            file.display()
        )
    })?;
    let ctl = if args.user {
        "systemctl --user"
    } else {
        "systemctl"
    };
    eprintln!("wrote {}; now:", file.display());
    eprintln!("  {ctl} daemon-reload && {ctl} enable --now {name}");
    if args.user {
        eprintln!(
            "  loginctl enable-linger $USER   # so that it starts at boot, not at your login"
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}
