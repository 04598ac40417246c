"""The rest of the rig: OSC in/out, MIDI in, video out, live presets and checkpoint swaps around the live engine.

One module a concept: `control` (the parameter table and the queue every input feeds), `osc`, `midi`,
`video_out`, `presets`, `swap`, and `rig` which wires them to a LiveEngine or a fixed-step run. Importing this
package needs none of the optional libraries (python-osc, mido, cyndilib, pyvirtualcam): each is imported by the
module that uses it, when the rig is asked for it.
"""
