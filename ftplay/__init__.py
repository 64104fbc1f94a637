"""ftplay: the fine-tuning playbook a small team can actually run."""
