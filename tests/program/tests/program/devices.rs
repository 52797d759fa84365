use anchor_lang::error::ErrorCode as Anchor;
use anchor_lang::AccountSerialize;
use ovpp::client;
use ovpp::errors::OvppError;
use ovpp::instructions::DeviceParams;
use ovpp::protocol::device_address;
use ovpp::state::{Device, DeviceKind, DeviceStatus};
use ovpp_program_tests::*;
use solana_sdk::signature::{Keypair, Signer};

#[tokio::test]
async fn registration_needs_both_the_owner_and_the_device_key() {
    let mut chain = TestChain::initialized(1, 1).await;
    let owner = chain.new_owner().await;
    let device_key = Keypair::new();
    let ix = client::register_device(owner.pubkey(), device_key.pubkey(), DeviceKind::HomeBattery, home_battery());

    let no_device_sig = without_signer(ix.clone(), &device_key.pubkey());
    assert_anchor_err(chain.send(&[no_device_sig], &[&owner]).await, Anchor::AccountNotSigner);
    let no_owner_sig = without_signer(ix.clone(), &owner.pubkey());
    assert_anchor_err(chain.send(&[no_owner_sig], &[&device_key]).await, Anchor::AccountNotSigner);

    chain.send(std::slice::from_ref(&ix), &[&owner, &device_key]).await.expect("both signatures");
    // The same device key cannot be registered again, by anyone.
    let thief = chain.new_owner().await;
    let again = client::register_device(thief.pubkey(), device_key.pubkey(), DeviceKind::HomeBattery, home_battery());
    assert_ovpp_err(chain.send(&[again], &[&thief, &device_key]).await, OvppError::DeviceAlreadyRegistered);
    assert_eq!(chain.device(&device_key.pubkey()).await.owner, owner.pubkey());
}

#[tokio::test]
async fn declared_parameters_are_checked_per_kind() {
    let mut chain = TestChain::initialized(1, 1).await;
    let owner = chain.new_owner().await;
    let cases: [(DeviceKind, DeviceParams, OvppError); 7] = [
        // A battery must have an energy capacity.
        (DeviceKind::HomeBattery, DeviceParams { energy_capacity_wh: 0, ..home_battery() }, OvppError::EnergyCapacityOutOfRange),
        // A smart meter stores nothing.
        (DeviceKind::SmartMeter, DeviceParams { rated_power_w: 24_000, ..home_battery() }, OvppError::EnergyCapacityOutOfRange),
        // 10 MW is no rooftop.
        (DeviceKind::RooftopSolar, DeviceParams { rated_power_w: 10_000_000, ..rooftop_solar() }, OvppError::RatedPowerOutOfRange),
        // A home battery inverter of 200 kW is a declaration error.
        (DeviceKind::HomeBattery, DeviceParams { rated_power_w: 200_000, ..home_battery() }, OvppError::RatedPowerOutOfRange),
        (
            DeviceKind::EvCharger,
            DeviceParams { rated_power_w: 11_000, energy_capacity_wh: 60_000, ..home_battery() },
            OvppError::EnergyCapacityOutOfRange,
        ),
        (DeviceKind::HomeBattery, DeviceParams { region: region("de-by"), ..home_battery() }, OvppError::InvalidRegion),
        (DeviceKind::HomeBattery, DeviceParams { region: *b"DE\0BY\0\0\0", ..home_battery() }, OvppError::InvalidRegion),
    ];
    for (kind, params, expected) in cases {
        let device_key = Keypair::new();
        let ix = client::register_device(owner.pubkey(), device_key.pubkey(), kind, params);
        assert_ovpp_err(chain.send(&[ix], &[&owner, &device_key]).await, expected);
    }
    // Each kind accepts a typical installation.
    let typical: [(DeviceKind, u64, u64); 7] = [
        (DeviceKind::Ev, 11_000, 77_000),
        (DeviceKind::EvCharger, 22_000, 0),
        (DeviceKind::HomeBattery, 5_000, 13_500),
        (DeviceKind::CiStorage, 500_000, 1_000_000),
        (DeviceKind::RooftopSolar, 9_000, 0),
        (DeviceKind::SmartMeter, 24_000, 0),
        (DeviceKind::EnergyManagementSystem, 30_000, 13_500),
    ];
    for (kind, rated_power_w, energy_capacity_wh) in typical {
        let params = DeviceParams { rated_power_w, energy_capacity_wh, ..home_battery() };
        let key = chain.register(&owner, kind, params).await;
        assert_eq!(chain.device(&key.pubkey()).await.kind, kind);
    }
}

#[tokio::test]
async fn only_the_owner_updates_transfers_and_retires() {
    let mut chain = TestChain::initialized(1, 1).await;
    let owner = chain.new_owner().await;
    let stranger = chain.new_owner().await;
    let key = chain.register(&owner, DeviceKind::HomeBattery, home_battery()).await;
    let key = key.pubkey();

    let bigger = DeviceParams { rated_power_w: 10_000, energy_capacity_wh: 27_000, region: region("DE-BW"), location_cell: 42 };
    let ix = client::update_device(stranger.pubkey(), &key, bigger);
    assert_ovpp_err(chain.send(&[ix], &[&stranger]).await, OvppError::NotDeviceOwner);
    let ix = client::transfer_device(stranger.pubkey(), &key, stranger.pubkey());
    assert_ovpp_err(chain.send(&[ix], &[&stranger]).await, OvppError::NotDeviceOwner);
    let ix = client::retire_device(stranger.pubkey(), &key);
    assert_ovpp_err(chain.send(&[ix], &[&stranger]).await, OvppError::NotDeviceOwner);

    // Updates are checked against the (fixed) kind.
    let invalid = DeviceParams { energy_capacity_wh: 0, ..bigger };
    let ix = client::update_device(owner.pubkey(), &key, invalid);
    assert_ovpp_err(chain.send(&[ix], &[&owner]).await, OvppError::EnergyCapacityOutOfRange);
    let ix = client::update_device(owner.pubkey(), &key, bigger);
    chain.send(&[ix], &[&owner]).await.expect("update");
    let device = chain.device(&key).await;
    assert_eq!((device.rated_power_w, device.energy_capacity_wh, device.location_cell), (10_000, 27_000, 42));
    assert_eq!(&device.region[..5], b"DE-BW");

    for bad_new_owner in [owner.pubkey(), anchor_lang::prelude::Pubkey::default()] {
        let ix = client::transfer_device(owner.pubkey(), &key, bad_new_owner);
        assert_ovpp_err(chain.send(&[ix], &[&owner]).await, OvppError::InvalidNewOwner);
    }

    let ix = client::retire_device(owner.pubkey(), &key);
    chain.send(std::slice::from_ref(&ix), &[&owner]).await.expect("retire");
    assert_eq!(chain.device(&key).await.status, DeviceStatus::Retired);
    assert_ovpp_err(chain.send(&[ix], &[&owner]).await, OvppError::DeviceRetired);
    let ix = client::update_device(owner.pubkey(), &key, bigger);
    assert_ovpp_err(chain.send(&[ix], &[&owner]).await, OvppError::DeviceRetired);
    let ix = client::transfer_device(owner.pubkey(), &key, stranger.pubkey());
    assert_ovpp_err(chain.send(&[ix], &[&owner]).await, OvppError::DeviceRetired);
}

/// RPC `getProgramAccounts` filters rely on these offsets; check them against real account bytes.
#[tokio::test]
async fn device_accounts_have_fixed_filter_offsets() {
    let mut chain = TestChain::initialized(1, 1).await;
    let owner = chain.new_owner().await;
    let key = chain.register(&owner, DeviceKind::RooftopSolar, rooftop_solar()).await;
    let data = chain.account(device_address(&key.pubkey()).0).await.unwrap().data;
    assert_eq!(&data[Device::DEVICE_KEY_OFFSET..][..32], key.pubkey().as_ref());
    for (offset, bytes) in [
        client::device_discriminator_filter(),
        client::device_owner_filter(&owner.pubkey()),
        client::device_kind_filter(DeviceKind::RooftopSolar),
        client::device_region_filter(&region("DE-BY")),
    ] {
        assert_eq!(&data[offset..offset + bytes.len()], bytes.as_slice(), "filter at offset {offset}");
    }
    assert_ne!(client::device_kind_filter(DeviceKind::HomeBattery).1, vec![data[Device::KIND_OFFSET]]);
    assert_eq!(&data[Device::OWNER_OFFSET..][..32], owner.pubkey().as_ref());
    assert_eq!(data[Device::KIND_OFFSET], DeviceKind::RooftopSolar as u8);
    assert_eq!(data[Device::STATUS_OFFSET], DeviceStatus::Active as u8);
    assert_eq!(&data[Device::REGION_OFFSET..][..8], &region("DE-BY"));
    // Every device account has the same size, so `dataSize` filters work too.
    assert_eq!(data.len(), 8 + <Device as anchor_lang::Space>::INIT_SPACE);
}

/// A forged `Device` (right bytes, wrong owner program) or another ovpp account type in the
/// device slot is refused before any handler logic runs.
#[tokio::test]
async fn forged_or_type_cosplayed_device_accounts_are_refused() {
    let mut chain = TestChain::initialized(1, 1).await;
    let owner = chain.new_owner().await;
    let key = chain.register(&owner, DeviceKind::HomeBattery, home_battery()).await;
    let real = chain.account(device_address(&key.pubkey()).0).await.unwrap();

    // Same bytes at the PDA of an unregistered key, but owned by the system program.
    let fake_key = Keypair::new();
    let mut device = chain.device(&key.pubkey()).await;
    device.device_key = fake_key.pubkey();
    let mut data = Vec::new();
    device.try_serialize(&mut data).unwrap();
    let forged = solana_sdk::account::Account { data, owner: anchor_lang::solana_program::system_program::ID, ..real.clone() };
    chain.set_account(&device_address(&fake_key.pubkey()).0, forged);
    let ix = client::retire_device(owner.pubkey(), &fake_key.pubkey());
    assert_anchor_err(chain.send(&[ix], &[&owner]).await, Anchor::AccountOwnedByWrongProgram);

    // The Config account (owned by ovpp, other discriminator) passed as the device.
    let ix = replace_account(client::retire_device(owner.pubkey(), &key.pubkey()), 2, ovpp::protocol::config_address().0);
    assert_anchor_err(chain.send(&[ix], &[&owner]).await, Anchor::AccountDiscriminatorMismatch);
}

#[tokio::test]
async fn the_authority_suspends_and_reinstates_devices() {
    let mut chain = TestChain::initialized(1, 1).await;
    let owner = chain.new_owner().await;
    let key = chain.register(&owner, DeviceKind::HomeBattery, home_battery()).await.pubkey();
    let ix = client::suspend_device(owner.pubkey(), &key, 7);
    assert_ovpp_err(chain.send(&[ix], &[&owner]).await, OvppError::NotAuthority);
    let authority = chain.authority.insecure_clone();
    chain.send(&[client::suspend_device(authority.pubkey(), &key, 7)], &[&authority]).await.expect("suspend");
    assert_eq!(chain.device(&key).await.status, DeviceStatus::Suspended);
    chain.send(&[client::reinstate_device(authority.pubkey(), &key)], &[&authority]).await.expect("reinstate");
    assert_eq!(chain.device(&key).await.status, DeviceStatus::Active);
    let again = client::reinstate_device(authority.pubkey(), &key);
    assert_ovpp_err(chain.send(&[again], &[&authority]).await, OvppError::DeviceNotSuspended);
}
