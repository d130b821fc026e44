//! Mail over SMTP, with lettre: plain, STARTTLS (required) or TLS from the first byte,
//! with a login when one is set. A fresh connection per mail.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::{EmailSpec, NotifyError, Security};

/// How long one mail may take, connection and conversation included (lettre's own
/// timeout covers only the connection).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

fn mailbox(address: &str, what: &str) -> Result<Mailbox, NotifyError> {
    address.parse().map_err(|e| {
        NotifyError::setup(format!(
            "the {what} address {address:?} cannot be used ({e}); expected an address such as \"ops@example.org\""
        ))
    })
}

impl Mailer {
    pub(crate) fn new(spec: &EmailSpec) -> Result<Self, NotifyError> {
        let to = spec
            .to
            .iter()
            .map(|a| mailbox(a, "recipient"))
            .collect::<Result<Vec<_>, _>>()?;
        let from = mailbox(&spec.from, "sender")?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&spec.host)
            .port(spec.port)
            .timeout(Some(Duration::from_secs(20)));
        if spec.security != Security::Plain {
            let mut params = TlsParameters::builder(spec.host.clone());
            if let Some(pem) = &spec.ca_pem {
                let cert = Certificate::from_pem(pem).map_err(|e| {
                    NotifyError::setup(format!("the `ca` file is not a PEM certificate: {e}"))
                })?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build()
                .map_err(|e| NotifyError::setup(format!("cannot set up TLS: {e}")))?;
            builder = builder.tls(match spec.security {
                Security::StartTls => Tls::Required(params),
                _ => Tls::Wrapper(params),
            });
        }
        if let Some((user, password)) = &spec.login {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            to,
        })
    }

    /// Sends one plain-text mail to every recipient.
    pub(crate) async fn send(&self, subject: &str, body: String) -> Result<(), String> {
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .body(body)
            .map_err(|e| format!("cannot build the mail: {e}"))?;
        match tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("the mail server refused or failed: {e}")),
            Err(_) => Err(format!(
                "the mail server did not finish within {}s",
                SEND_TIMEOUT.as_secs()
            )),
        }
    }
}
