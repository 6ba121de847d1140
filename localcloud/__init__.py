"""Local stand-ins for the cloud services the function talks to, and the local tools around it (never deployed).

The emulators, written from Tencent's documents and never importing the function (pyproject.toml checks it):
  cos/         COS's XML API and CI's media-job, queue and file-hash APIs    python -m localcloud.cos
  scf/         SCF's API 3.0 Invoke, with the asynchronous retry policy      python -m localcloud.scf
  webhook.py   a notification receiver that checks each vendor's signature  python -m localcloud.webhook
  serving.py   the HTTP plumbing the three share
Running the function here (python -m localcloud demo | run | serve | samples | soak; dev.py demo, run, serve):
  runner.py    one event through index.main_handler as SCF would           dev.py run, and the others below
  samples.py   the sample events and objects in events/, rebuilt            python -m localcloud samples
  demo.py      every sample event against the COS emulator (the README's first command)
  serve.py     the function behind a local Function URL, emulator seeded    dev.py serve
  soak.py      many callbacks, random faults, lost and repeated deliveries  python -m localcloud soak
Shipping it: package.py builds the deploy package (dev.py package); compat.py checks the shipped code against
Python 3.10 (dev.py compat)."""
