from wxtest import Tap
t = Tap()
t.done()
