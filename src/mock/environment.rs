//! Which of Apple's two environments the mock stands in for.

/// The APNs environment a [`MockApns`](super::MockApns) answers as (APNS.md §1, §6). The mock's
/// own type: it never imports the client's.
///
/// - [`Sandbox`](Self::Sandbox) (the default): `api.sandbox.push.apple.com`, the development
///   environment. Accepted pushes carry `apns-unique-id`, the key for Apple's delivery log.
/// - [`Production`](Self::Production): `api.push.apple.com`. No `apns-unique-id`.
///
/// In either, a push certificate valid only for the other environment (its environment
/// extensions list only the other one) is answered 403 BadCertificateEnvironment; a certificate
/// without environment extensions is not judged on its environment. Likewise a provider key
/// restricted to the other environment
/// ([`MockApns::restrict_key_environment`](super::MockApns::restrict_key_environment)) is
/// answered 403 BadEnvironmentKeyIdInToken; keys are valid in both until restricted.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), herald::mock::MockError> {
/// use herald::mock::{Environment, MockApns};
/// assert_eq!(MockApns::start().await?.environment(), Environment::Sandbox); // the default
/// let mock = MockApns::builder().environment(Environment::Production).start().await?;
/// assert_eq!(mock.environment(), Environment::Production);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Environment {
    /// The development environment, `api.sandbox.push.apple.com`.
    #[default]
    Sandbox,
    /// The production environment, `api.push.apple.com`.
    Production,
}
