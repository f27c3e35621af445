package domain

// Events lists one value of every event type, for the event store's registry.
func Events() []Event {
	return []Event{
		UserRegistered{}, UserVerificationIssued{}, UserVerified{}, UserLoginSucceeded{}, UserReauthenticated{}, UserLoginFailed{},
		UserLocked{}, UserUnlockIssued{}, UserUnlocked{}, UserPasswordChanged{}, UserPasswordResetIssued{}, UserSuperAdminGranted{},
		UserTOTPSetupStarted{}, UserTOTPEnabled{}, UserTOTPDisabled{}, UserRecoveryCodeUsed{}, UserAPIKeyCreated{}, UserAPIKeyRevoked{},
		UserPasswordResetForced{}, UserPersonalDataErased{}, PlatformPersonalDataSealed{},
		SessionStarted{}, SessionRefreshed{}, SessionEnded{},
		TenantCreated{}, TenantMemberAdded{}, TenantMemberRoleChanged{}, TenantSettingsChanged{}, TenantPlanChanged{},
		TenantInvitationCreated{}, TenantInvitationAccepted{}, TenantInvitationRevoked{},
		TenantMemberDeactivated{}, TenantMemberReactivated{}, TenantMembershipClosed{},
		AddressLoginFailed{}, AddressLocked{},
		MailRequested{}, MailSent{}, MailFailed{},
		DatabaseRequested{}, DatabaseProvisioned{}, DatabaseProvisioningFailed{}, DatabaseStopped{}, DatabaseStarted{},
		DatabaseDeleted{}, DatabaseRestored{}, DatabasePurged{}, DatabaseOwnerChanged{}, DatabaseCredentialsRotated{},
		DatabaseStorageMeasured{}, DatabaseWritesRestricted{}, DatabaseWritesRestored{}, DatabaseCredentialsRevealed{},
		QuotaDatabaseReserved{}, QuotaDatabaseReleased{}, QuotaSubQuotaSet{}, QuotaDatabaseOwnerChanged{},
		QueryStarted{}, QueryExecuted{}, QueryResultArchived{}, QueryResultArchiveDeleted{}, QueryResultExported{},
		MetricsPruned{}, TenantLoadSampled{},
		AlertRuleCreated{}, AlertRuleChanged{}, AlertRuleDeleted{}, AlertFired{}, AlertResolved{}, AlertNotified{},
		WebhookCreated{}, WebhookDeleted{}, WebhookDeliveryRequested{}, WebhookDeliveryAttempted{},
		NotificationRead{}, NotificationAllRead{},
	}
}
