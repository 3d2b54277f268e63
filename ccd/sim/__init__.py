"""A simulated Asterisk 22 for ccd's tests and ``make run``.

It speaks the real AMI wire protocol on TCP and drives FastAGI like Asterisk; behind them a
call engine runs the same ``asterisk-conf/`` a real Asterisk loads (endpoints, queues,
dialplan) and emits the events, in the order and with the fields, that Asterisk 22 emits
(checked against ``../shared/asterisk-captures``).

Layout (one concern per module):

* :mod:`ccd.sim.conf`, :mod:`ccd.sim.pbxconf`, :mod:`ccd.sim.dialplan` - the configuration
* :mod:`ccd.sim.engine` (channels, devices, bridges, events), :mod:`ccd.sim.pbx` (dialplan
  executor), :mod:`ccd.sim.apps` (applications: Queue, Dial, AGI, MixMonitor, ChanSpy ...),
  :mod:`ccd.sim.queues`, :mod:`ccd.sim.dialing`, :mod:`ccd.sim.originate`,
  :mod:`ccd.sim.transfer`, :mod:`ccd.sim.local`, :mod:`ccd.sim.recording`,
  :mod:`ccd.sim.phones` (the SIP phones around the PBX) - the call engine
* :mod:`ccd.sim.ami` - the AMI server and its actions
* :mod:`ccd.sim.agi_session` / :mod:`ccd.sim.agi_channel` / :mod:`ccd.sim.agi_client` -
  FastAGI
* :mod:`ccd.sim.simulator` (the whole PBX, faults), :mod:`ccd.sim.control` (control port),
  :mod:`ccd.sim.traffic` (seeded callers and agents), :mod:`ccd.sim.scenario` (TOML scripts)
"""

from ccd.sim.simulator import SimOptions, Simulator

__all__ = ["SimOptions", "Simulator"]
